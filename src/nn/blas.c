/*
 * blas.c - which OpenBLAS kernel the process runs with, and why.
 *
 * A DYNAMIC_ARCH OpenBLAS holds one kernel set per CPU generation and picks one from CPUID when
 * the library loads (a constructor, before main). Its table only knows the CPU models of its
 * release: on a newer model it may fall back to a generic set far below the CPU. Debian 12's
 * 0.3.21 on an Intel family 6 model 0xCF (Emerald Rapids) runs "Prescott" (SSE3) kernels: its
 * model switch has no case for that extended model and falls through to the Pentium 4 branch,
 * and sgemm runs 4-5x slower than with "SkylakeX". The only documented way to choose is the
 * OPENBLAS_CORETYPE environment variable, read once, at load. So:
 *
 *   1. macc_nn_blas_select() reads the CPU's words (macc_cpuid_read: CPUID leaves 0, 1, 7.0,
 *      7.1, 0x80000001 and XGETBV(0), i.e. what the CPU has and which register state the OS
 *      saves) and the running kernel (openblas_get_corename).
 *   2. macc_blas_decide(), a pure function, maps (CPU, running kernel, request) to a kernel. Each
 *      kernel of 0.3.21's x86-64 list has the instruction sets it needs (what its assembly and
 *      its -march flags use) and a level: SSE (1), AVX (2), AVX2+FMA (3), AVX-512 (4). The CPU's
 *      level is the highest whose kernel it runs. Automatic: keep the running kernel unless it
 *      cannot run here or its level is below the CPU's; then take the CPU's best (SkylakeX; Zen
 *      on AMD and Hygon, Haswell elsewhere; Sandybridge; Prescott). The AMD family 15h kernels
 *      (Bulldozer..Excavator) count as level 3: they are OpenBLAS's own choice for those CPUs.
 *      A name asked for explicitly is used if the CPU runs it, refused otherwise.
 *   3. When the choice differs from the running kernel, the program re-executes itself
 *      (execv("/proc/self/exe", argv): same pid, fds and arguments) with OPENBLAS_CORETYPE set
 *      and a marker variable. The new image sees the marker, checks that OpenBLAS took the
 *      kernel, and runs an sgemm self-test against a naive loop in a child process (so an
 *      illegal instruction kills the child, not the program). If the test fails it re-executes
 *      once more with the kernel it came from, marked as a fallback, so there is never a loop.
 *      Then the environment is put back as the user had it (children choose afresh).
 *
 * Where OpenBLAS already picked right nothing happens: no exec, no self-test, no cost. Under
 * valgrind (its preload library is in LD_PRELOAD) the program is not re-executed, because exec
 * would leave the tool. OPENBLAS_CORETYPE set by the user is respected like OpenBLAS's own
 * pick, unless the CPU cannot run it. No file-scope mutable state: what crosses the exec lives
 * in the environment; the kernel in use is always asked from OpenBLAS (macc_nn_blas_kernel).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define HAVE_X86_CPUID 1
#endif

#include <cblas.h>

#include "macc/nn.h"

/* OpenBLAS's cblas.h declares these; a generic cblas.h (same library underneath) may not. */
#ifndef OPENBLAS_VERSION
char *openblas_get_corename(void);
char *openblas_get_config(void);
#endif

#define ENV_CORETYPE "OPENBLAS_CORETYPE"
#define ENV_WANT "MACC_BLAS_KERNEL"
#define ENV_MARK "MACC_BLAS_REEXEC"       /* pid:step:reason:from:to:detected:source:req:detail */
#define ENV_ORIG "MACC_BLAS_ORIG_CORETYPE" /* the user's OPENBLAS_CORETYPE, while we override it */
#define ENV_FAULT "MACC_BLAS_SELFTEST_FAULT"

/* --- instruction sets ------------------------------------------------------------------------ */

enum {
	F_SSE3 = 1u << 0,
	F_SSSE3 = 1u << 1,
	F_SSE41 = 1u << 2,
	F_SSE42 = 1u << 3,
	F_AVX = 1u << 4,    /* AVX with the OS saving YMM state */
	F_AVX2 = 1u << 5,
	F_FMA = 1u << 6,
	F_AVX512 = 1u << 7, /* F, CD, BW, DQ and VL (-march=skylake-avx512), OS saving ZMM state */
	F_BF16 = 1u << 8,   /* AVX512_BF16 */
	F_SSE4A = 1u << 9,
	F_PREFW = 1u << 10, /* PREFETCHW (3DNowPrefetch) */
	F_FMA4 = 1u << 11,
};

static const struct {
	unsigned flag;
	const char *name;
} flag_names[] = {
	{ F_SSE3, "sse3" },     { F_SSSE3, "ssse3" },     { F_SSE41, "sse4.1" },
	{ F_SSE42, "sse4.2" },  { F_SSE4A, "sse4a" },     { F_PREFW, "prefetchw" },
	{ F_AVX, "avx" },       { F_AVX2, "avx2" },       { F_FMA, "fma" },
	{ F_FMA4, "fma4" },     { F_AVX512, "avx512(f,cd,bw,dq,vl)" }, { F_BF16, "avx512_bf16" },
};

#define XCR0_SSE_AVX 0x6u    /* XMM and YMM state */
#define XCR0_AVX512 0xe0u    /* opmask, ZMM_Hi256, Hi16_ZMM state */

static unsigned cpu_flags(const struct macc_cpuid *c)
{
	unsigned f = 0;
	uint32_t e1 = c->leaf1_ecx, b7 = c->leaf7_ebx;
	bool os_avx = (e1 & (1u << 27)) && (c->xcr0 & XCR0_SSE_AVX) == XCR0_SSE_AVX;
	uint32_t avx512 = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31);

	f |= (e1 & (1u << 0)) ? F_SSE3 : 0;
	f |= (e1 & (1u << 9)) ? F_SSSE3 : 0;
	f |= (e1 & (1u << 19)) ? F_SSE41 : 0;
	f |= (e1 & (1u << 20)) ? F_SSE42 : 0;
	f |= (c->ext1_ecx & (1u << 6)) ? F_SSE4A : 0;
	f |= (c->ext1_ecx & (1u << 8)) ? F_PREFW : 0;
	if (os_avx && (e1 & (1u << 28))) {
		f |= F_AVX;
		f |= (b7 & (1u << 5)) ? F_AVX2 : 0;
		f |= (e1 & (1u << 12)) ? F_FMA : 0;
		f |= (c->ext1_ecx & (1u << 16)) ? F_FMA4 : 0;
		if ((b7 & avx512) == avx512 && (c->xcr0 & XCR0_AVX512) == XCR0_AVX512) {
			f |= F_AVX512;
			f |= (c->leaf7s1_eax & (1u << 5)) ? F_BF16 : 0;
		}
	}
	return f;
}

/* --- OpenBLAS 0.3.21's x86-64 kernels ------------------------------------------------------ */

struct kernel {
	const char *name;
	unsigned needs;
	int level;
	bool forcible; /* accepted by 0.3.21's OPENBLAS_CORETYPE */
};

#define L_SSE 1
#define L_AVX 2
#define L_AVX2 3
#define L_AVX512 4
#define NEEDS_HSW (F_AVX | F_AVX2 | F_FMA)

/* The 32-bit-only sets (Katmai, Coppermine, Northwood, Banias, Athlon) run as Prescott on
 * x86-64 and are left out. Cooperlake can be detected but not forced in 0.3.21 (its
 * force_coretype stops one entry short); its sgemm is SkylakeX's. */
static const struct kernel kernels[] = {
	{ "Prescott", F_SSE3, L_SSE, true },
	{ "Atom", F_SSSE3, L_SSE, true },
	{ "Core2", F_SSSE3, L_SSE, true },
	{ "Penryn", F_SSE41, L_SSE, true },
	{ "Dunnington", F_SSE41, L_SSE, true },
	{ "Nehalem", F_SSE42, L_SSE, true },
	{ "Opteron", F_PREFW, L_SSE, true },
	{ "Opteron_SSE3", F_SSE3 | F_PREFW, L_SSE, true },
	{ "Barcelona", F_SSE3 | F_SSE4A | F_PREFW, L_SSE, true },
	{ "Nano", F_SSSE3, L_SSE, true },
	{ "Bobcat", F_SSSE3 | F_SSE4A | F_PREFW, L_SSE, true },
	{ "Sandybridge", F_AVX, L_AVX, true },
	{ "Bulldozer", F_AVX | F_FMA4, L_AVX2, true },
	{ "Piledriver", F_AVX | F_FMA | F_FMA4, L_AVX2, true },
	{ "Steamroller", F_AVX | F_FMA | F_FMA4, L_AVX2, true },
	{ "Excavator", NEEDS_HSW | F_FMA4, L_AVX2, true },
	{ "Haswell", NEEDS_HSW, L_AVX2, true },
	{ "Zen", NEEDS_HSW, L_AVX2, true },
	{ "SkylakeX", NEEDS_HSW | F_AVX512, L_AVX512, true },
	{ "Cooperlake", NEEDS_HSW | F_AVX512 | F_BF16, L_AVX512, false },
};

#define NKERNELS (sizeof(kernels) / sizeof(kernels[0]))

static const struct kernel *kernel_find(const char *name)
{
	for (size_t i = 0; name != NULL && i < NKERNELS; i++) {
		if (strcasecmp(name, kernels[i].name) == 0) {
			return &kernels[i];
		}
	}
	return NULL;
}

static bool runs(const struct kernel *k, unsigned flags)
{
	return (k->needs & flags) == k->needs;
}

static int cpu_level(unsigned flags)
{
	int level = 0;

	for (size_t i = 0; i < NKERNELS; i++) {
		if (runs(&kernels[i], flags) && kernels[i].level > level) {
			level = kernels[i].level;
		}
	}
	return level;
}

static bool vendor_amd(const struct macc_cpuid *c)
{
	return strcmp(c->vendor, "AuthenticAMD") == 0 || strcmp(c->vendor, "HygonGenuine") == 0;
}

/* The CPU's best kernel, or NULL for a CPU without SSE3. */
static const char *best_kernel(const struct macc_cpuid *c, unsigned flags)
{
	switch (cpu_level(flags)) {
	case L_AVX512:
		return "SkylakeX";
	case L_AVX2:
		return vendor_amd(c) ? "Zen" : "Haswell";
	case L_AVX:
		return "Sandybridge";
	case L_SSE:
		return (flags & F_SSE3) ? "Prescott" : NULL;
	default:
		return NULL;
	}
}

static bool is_auto(const char *want)
{
	return want == NULL || want[0] == '\0' || strcasecmp(want, "auto") == 0;
}

static void set_choice(struct macc_blas_choice *ret, const char *kernel,
		       enum macc_blas_reason reason)
{
	snprintf(ret->kernel, sizeof(ret->kernel), "%s", kernel);
	ret->reason = reason;
}

static int unknown_kernel(const char *want, struct macc_errmsg *err)
{
	char list[400];
	size_t off = 0;

	for (size_t i = 0; i < NKERNELS; i++) {
		if (kernels[i].forcible && off < sizeof(list)) {
			off += (size_t)snprintf(list + off, sizeof(list) - off, ", %s",
						kernels[i].name);
		}
	}
	return macc_errf(err, MACC_ECONFIG, "unknown OpenBLAS kernel '%s' (auto%s)", want, list);
}

/* Automatic choice for a running kernel; `refused` says an explicit request was refused. */
static void decide_auto(const struct macc_cpuid *cpu, unsigned flags, const char *running,
			bool refused, struct macc_blas_choice *ret)
{
	const struct kernel *k = kernel_find(running);
	const char *best = best_kernel(cpu, flags);
	enum macc_blas_reason keep = refused ? MACC_BLAS_REFUSED : MACC_BLAS_KEEP;

	if (k != NULL && !runs(k, flags) && best != NULL) {
		set_choice(ret, best, MACC_BLAS_REFUSED);
	} else if (k != NULL && k->level < cpu_level(flags) && best != NULL &&
		   cpu_level(flags) >= L_AVX) {
		set_choice(ret, best, refused ? MACC_BLAS_REFUSED : MACC_BLAS_UPGRADE);
	} else {
		/* Fine as it is, newer than this table (unknown name), or nothing better. */
		set_choice(ret, k != NULL ? k->name : (running != NULL ? running : "unknown"),
			   keep);
	}
}

int macc_blas_decide(const struct macc_cpuid *cpu, const char *running, const char *want,
		     struct macc_blas_choice *ret, struct macc_errmsg *err)
{
	unsigned flags = cpu_flags(cpu);
	const struct kernel *w = NULL;

	if (!is_auto(want)) {
		w = kernel_find(want);
		if (w == NULL || !w->forcible) {
			return unknown_kernel(want, err);
		}
		if (runs(w, flags)) {
			set_choice(ret, w->name, MACC_BLAS_EXPLICIT);
			return 0;
		}
	}
	decide_auto(cpu, flags, running, w != NULL, ret);
	return 0;
}

const char *macc_blas_reason_name(enum macc_blas_reason r)
{
	switch (r) {
	case MACC_BLAS_KEEP:
		return "kept";
	case MACC_BLAS_UPGRADE:
		return "upgraded";
	case MACC_BLAS_EXPLICIT:
		return "as asked";
	case MACC_BLAS_REFUSED:
		return "refused";
	case MACC_BLAS_FALLBACK:
		return "fallback";
	case MACC_BLAS_UNCHANGED:
		return "unchanged";
	}
	return "?";
}

/* --- reading the CPU --------------------------------------------------------------------------- */

#ifdef HAVE_X86_CPUID
static uint64_t read_xcr0(void)
{
	uint32_t lo, hi;

	/* XGETBV with ECX = 0, spelled as bytes so no -mxsave is needed. */
	__asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
	return (uint64_t)hi << 32 | lo;
}
#endif

int macc_cpuid_read(struct macc_cpuid *ret)
{
#ifdef HAVE_X86_CPUID
	struct macc_cpuid c;
	unsigned a, b, cx, d, max;

	memset(&c, 0, sizeof(c));
	if (__get_cpuid(0, &max, &b, &cx, &d) == 0) {
		return -ENOTSUP;
	}
	memcpy(c.vendor, &b, 4);
	memcpy(c.vendor + 4, &d, 4);
	memcpy(c.vendor + 8, &cx, 4);
	__cpuid(1, c.leaf1_eax, b, c.leaf1_ecx, c.leaf1_edx);
	if (max >= 7) {
		__cpuid_count(7, 0, a, c.leaf7_ebx, c.leaf7_ecx, c.leaf7_edx);
		if (a >= 1) {
			__cpuid_count(7, 1, c.leaf7s1_eax, b, cx, d);
		}
	}
	if (__get_cpuid(0x80000000, &a, &b, &cx, &d) != 0 && a >= 0x80000001) {
		__cpuid(0x80000001, a, b, c.ext1_ecx, d);
	}
	if (c.leaf1_ecx & (1u << 27)) {
		c.xcr0 = read_xcr0();
	}
	*ret = c;
	return 0;
#else
	(void)ret;
	return -ENOTSUP;
#endif
}

void macc_cpuid_describe(const struct macc_cpuid *c, char *buf, size_t len)
{
	uint32_t eax = c->leaf1_eax;
	unsigned family = (eax >> 8) & 0xf, model = (eax >> 4) & 0xf;
	unsigned flags = cpu_flags(c);
	size_t off;

	if (family == 0xf) {
		family += (eax >> 20) & 0xff;
	}
	if (family == 0x6 || family >= 0xf) {
		model += ((eax >> 16) & 0xf) << 4;
	}
	off = (size_t)snprintf(buf, len, "%s family %u model %u:", c->vendor[0] ? c->vendor : "?",
			       family, model);
	for (size_t i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]) && off < len; i++) {
		if (flags & flag_names[i].flag) {
			off += (size_t)snprintf(buf + off, len - off, " %s", flag_names[i].name);
		}
	}
}

/* --- the self-test ------------------------------------------------------------------------------ */

struct shape {
	bool ta, tb;
	int m, n, k;
	float alpha, beta;
};

/* Small ones take 0.3.21's small-matrix kernels (SkylakeX: M*N*K <= 1e6), big ones the blocked
 * GEMM; odd sizes leave edge tiles. About 9 MFLOP in all. */
static const struct shape shapes[] = {
	{ false, true, 64, 96, 100, 1.0f, 0.0f },   /* dense forward */
	{ true, false, 67, 45, 129, 1.0f, 1.0f },   /* dense dW */
	{ false, false, 33, 70, 50, -1.5f, 0.25f }, /* dense dX */
	{ true, true, 21, 17, 9, 0.5f, 0.0f },
	{ false, false, 150, 130, 160, 1.0f, 0.0f },
	{ false, true, 128, 200, 100, 1.0f, 1.0f },
	{ true, false, 96, 144, 120, 0.75f, 0.5f },
};

#define SELFTEST_TOL 1e-4

/* Deterministic values in [-1, 1) (xorshift32). */
static void fill(float *x, size_t n, uint32_t *s)
{
	for (size_t i = 0; i < n; i++) {
		*s ^= *s << 13;
		*s ^= *s >> 17;
		*s ^= *s << 5;
		x[i] = (float)((double)*s / 2147483648.0 - 1.0);
	}
}

/* Worst relative error of c against the naive product (row-major, leading dimensions = row
 * lengths); +inf for a non-finite element. */
static double check_product(const struct shape *s, const float *a, const float *b,
			    const float *c0, const float *c)
{
	int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
	double worst = 0.0;

	for (int i = 0; i < s->m; i++) {
		for (int j = 0; j < s->n; j++) {
			double sum = 0.0, mag = 0.0, ref, scale, e;

			for (int p = 0; p < s->k; p++) {
				double x = s->ta ? a[p * lda + i] : a[i * lda + p];
				double y = s->tb ? b[j * ldb + p] : b[p * ldb + j];

				sum += x * y;
				mag += fabs(x * y);
			}
			ref = s->alpha * sum + s->beta * (double)c0[i * s->n + j];
			scale = fabs(s->alpha) * mag + fabs(s->beta * (double)c0[i * s->n + j]);
			if (!isfinite(c[i * s->n + j])) {
				return INFINITY;
			}
			e = fabs((double)c[i * s->n + j] - ref) / (scale > 0.0 ? scale : 1.0);
			worst = e > worst ? e : worst;
		}
	}
	return worst;
}

int macc_blas_selftest_with(macc_sgemm_fn f, void *ctx, double *ret_worst)
{
	double worst = 0.0;
	uint32_t seed = 0x9e3779b9u;
	int rc = 0;

	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		const struct shape *s = &shapes[i];
		size_t na = (size_t)s->m * (size_t)s->k, nb = (size_t)s->k * (size_t)s->n;
		size_t nc = (size_t)s->m * (size_t)s->n;
		float *a = malloc(na * sizeof(float)), *b = malloc(nb * sizeof(float));
		float *c0 = malloc(nc * sizeof(float)), *c = malloc(nc * sizeof(float));
		double e;

		if (a == NULL || b == NULL || c0 == NULL || c == NULL) {
			free(a);
			free(b);
			free(c0);
			free(c);
			return -ENOMEM;
		}
		fill(a, na, &seed);
		fill(b, nb, &seed);
		fill(c0, nc, &seed);
		memcpy(c, c0, nc * sizeof(float));
		f(ctx, s->ta, s->tb, s->m, s->n, s->k, s->alpha, a, s->ta ? s->m : s->k, b,
		  s->tb ? s->k : s->n, s->beta, c, s->n);
		e = check_product(s, a, b, c0, c);
		worst = e > worst ? e : worst;
		free(a);
		free(b);
		free(c0);
		free(c);
	}
	if (!(worst <= SELFTEST_TOL)) {
		rc = MACC_ECORRUPT;
	}
	*ret_worst = worst;
	return rc;
}

static void openblas_sgemm(void *ctx, bool ta, bool tb, int m, int n, int k, float alpha,
			   const float *a, int lda, const float *b, int ldb, float beta, float *c,
			   int ldc)
{
	(void)ctx;
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
		    m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* The fault the test suite injects: the real product with one element off by 1 %. */
static void faulty_sgemm(void *ctx, bool ta, bool tb, int m, int n, int k, float alpha,
			 const float *a, int lda, const float *b, int ldb, float beta, float *c,
			 int ldc)
{
	openblas_sgemm(ctx, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
	c[(m / 2) * ldc + n / 2] *= 1.01f;
}

int macc_nn_blas_selftest(double *ret_worst)
{
	const char *fault = getenv(ENV_FAULT);
	bool inject = fault != NULL && strcasecmp(fault, macc_nn_blas_kernel()) == 0;

	return macc_blas_selftest_with(inject ? faulty_sgemm : openblas_sgemm, NULL, ret_worst);
}

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int macc_nn_blas_sgemm_gflops(int n, double seconds, double *ret_wall, double *ret_cpu)
{
	size_t nn = (size_t)n * (size_t)n;
	float *a, *b, *c;
	uint32_t seed = 12345;
	double t0, c0, el, cpu, flop;
	long reps = 0;

	if (n < 1) {
		return -EINVAL;
	}
	a = malloc(nn * sizeof(float));
	b = malloc(nn * sizeof(float));
	c = calloc(nn, sizeof(float));
	if (a == NULL || b == NULL || c == NULL) {
		free(a);
		free(b);
		free(c);
		return -ENOMEM;
	}
	fill(a, nn, &seed);
	fill(b, nn, &seed);
	openblas_sgemm(NULL, false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm-up */
	t0 = clock_s(CLOCK_MONOTONIC);
	c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
	do {
		openblas_sgemm(NULL, false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
		reps++;
		el = clock_s(CLOCK_MONOTONIC) - t0;
	} while (el < seconds);
	cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
	free(a);
	free(b);
	free(c);
	flop = 2.0 * (double)n * (double)n * (double)n * (double)reps;
	*ret_wall = flop / el / 1e9;
	*ret_cpu = cpu > 0.0 ? flop / cpu / 1e9 : 0.0;
	return 0;
}

/* The self-test in a child process: a kernel that executes an instruction this CPU lacks kills
 * the child, not the program. Returns 0 (passed), MACC_ECORRUPT (failed: *ret_worst, or
 * *ret_sig when a signal ended it) or -errno when no child could be made. */
static int selftest_isolated(double *ret_worst, int *ret_sig)
{
	int fds[2], status = 0, rc;
	double worst = INFINITY;
	pid_t pid;
	ssize_t got;
	struct sigaction dfl, old;

	*ret_sig = 0;
	if (pipe(fds) < 0) {
		return -errno;
	}
	/* SIGCHLD ignored (inherited from whoever started us) would reap the child for us. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGCHLD, &dfl, &old);
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(fds[0]);
		close(fds[1]);
		sigaction(SIGCHLD, &old, NULL);
		return -e;
	}
	if (pid == 0) {
		int r;

		close(fds[0]);
		r = macc_nn_blas_selftest(&worst);
		if (write(fds[1], &worst, sizeof(worst)) != (ssize_t)sizeof(worst)) {
			_exit(2);
		}
		_exit(r == 0 ? 0 : 1);
	}
	close(fds[1]);
	do {
		got = read(fds[0], &worst, sizeof(worst));
	} while (got < 0 && errno == EINTR);
	close(fds[0]);
	while ((rc = (int)waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
	}
	rc = rc < 0 ? -errno : 0;
	sigaction(SIGCHLD, &old, NULL);
	if (rc < 0) {
		return rc;
	}
	*ret_worst = got == (ssize_t)sizeof(worst) ? worst : INFINITY;
	if (WIFSIGNALED(status)) {
		*ret_sig = WTERMSIG(status);
		return MACC_ECORRUPT;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : MACC_ECORRUPT;
}

/* --- selection at program start -------------------------------------------------------------- */

const char *macc_nn_blas_kernel(void)
{
	const char *k = openblas_get_corename();

	return k != NULL ? k : "unknown";
}

const char *macc_nn_blas_config(void)
{
	const char *c = openblas_get_config();

	return c != NULL ? c : "OpenBLAS";
}

static const char *const sources[] = { "default", "command line", ENV_WANT, "config",
				       ENV_CORETYPE };

enum { SRC_DEFAULT, SRC_CLI, SRC_ENV, SRC_CONFIG, SRC_CORETYPE, NSOURCES };

enum step { STEP_TRY = 1, STEP_FALLBACK = 2 };

/* What the marker variable carries across an exec. */
struct mark {
	long pid;
	int step, reason, source;
	char from[MACC_BLAS_NAME_MAX], to[MACC_BLAS_NAME_MAX], detected[MACC_BLAS_NAME_MAX];
	char requested[MACC_BLAS_NAME_MAX], detail[40];
};

/* A field of the marker: letters, digits and ._+-= only, "-" for empty. */
static bool copy_field(char *dst, size_t len, const char *src)
{
	size_t n = strlen(src);

	if (n == 0 || n >= len) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!isalnum((unsigned char)src[i]) && strchr("._+-=", src[i]) == NULL) {
			return false;
		}
	}
	snprintf(dst, len, "%s", strcmp(src, "-") == 0 ? "" : src);
	return true;
}

static bool parse_mark(const char *s, struct mark *m)
{
	char buf[256], *save = NULL, *f[9];
	int n = 0;

	if (s == NULL || strlen(s) >= sizeof(buf)) {
		return false;
	}
	snprintf(buf, sizeof(buf), "%s", s);
	for (char *t = strtok_r(buf, ":", &save); t != NULL && n < 9;
	     t = strtok_r(NULL, ":", &save)) {
		f[n++] = t;
	}
	if (n != 9) {
		return false;
	}
	memset(m, 0, sizeof(*m));
	m->pid = strtol(f[0], NULL, 10);
	m->step = atoi(f[1]);
	m->reason = atoi(f[2]);
	m->source = atoi(f[6]);
	return m->pid > 0 && (m->step == STEP_TRY || m->step == STEP_FALLBACK) &&
	       m->reason >= MACC_BLAS_KEEP && m->reason <= MACC_BLAS_UNCHANGED &&
	       m->source >= 0 && m->source < NSOURCES &&
	       copy_field(m->from, sizeof(m->from), f[3]) &&
	       copy_field(m->to, sizeof(m->to), f[4]) &&
	       copy_field(m->detected, sizeof(m->detected), f[5]) &&
	       copy_field(m->requested, sizeof(m->requested), f[7]) &&
	       copy_field(m->detail, sizeof(m->detail), f[8]);
}

static const char *dash(const char *s)
{
	return s[0] ? s : "-";
}

/* Put the environment back as the user had it. */
static void restore_env(void)
{
	const char *orig = getenv(ENV_ORIG);

	if (orig != NULL) {
		setenv(ENV_CORETYPE, orig, 1);
		unsetenv(ENV_ORIG);
	} else {
		unsetenv(ENV_CORETYPE);
	}
	unsetenv(ENV_MARK);
}

/* Replace the process with itself running `kernel`; returns -errno only if exec failed (the
 * environment is then as before). */
static int reexec(char *const argv[], const struct mark *m, const char *kernel)
{
	char val[256];
	const char *user = getenv(ENV_CORETYPE);
	bool first = getenv(ENV_MARK) == NULL;
	int e;

	snprintf(val, sizeof(val), "%ld:%d:%d:%s:%s:%s:%d:%s:%s", (long)getpid(), m->step,
		 m->reason, dash(m->from), dash(m->to), dash(m->detected), m->source,
		 dash(m->requested), dash(m->detail));
	if (first && user != NULL) {
		setenv(ENV_ORIG, user, 1);
	}
	setenv(ENV_MARK, val, 1);
	setenv(ENV_CORETYPE, kernel, 1);
	execv("/proc/self/exe", argv);
	e = errno;
	if (first) {
		restore_env();
	}
	return -e;
}

static bool under_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");

	return p != NULL && strstr(p, "vgpreload") != NULL;
}

static void report_init(struct macc_blas_report *r, const char *requested, int source)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->kernel, sizeof(r->kernel), "%s", macc_nn_blas_kernel());
	snprintf(r->requested, sizeof(r->requested), "%s", requested);
	r->source = sources[source];
	r->reason = MACC_BLAS_UNCHANGED;
}

static size_t refused_note(char *buf, size_t len, const char *refused)
{
	int n = snprintf(buf, len, "%s needs instructions this CPU lacks", refused);

	return n < 0 ? 0 : ((size_t)n < len ? (size_t)n : len - 1);
}

/* The second image: check the kernel we asked for, self-test it, fall back if it fails. */
static int after_exec(const struct mark *m, char *const argv[], struct macc_blas_report *r,
		      struct macc_errmsg *err)
{
	double worst = 0.0;
	int sig = 0, rc;
	struct mark fb;

	snprintf(r->detected, sizeof(r->detected), "%s", m->detected);
	if (m->step == STEP_FALLBACK) {
		restore_env();
		r->reason = MACC_BLAS_FALLBACK;
		snprintf(r->note, sizeof(r->note), "%s failed its sgemm self-test (%s); back to %s",
			 m->to, m->detail, r->kernel);
		return 0;
	}
	if (strcasecmp(r->kernel, m->to) != 0) {
		restore_env();
		snprintf(r->note, sizeof(r->note), "OpenBLAS did not take %s=%s", ENV_CORETYPE,
			 m->to);
		return 0;
	}
	rc = selftest_isolated(&worst, &sig);
	if (rc != MACC_ECORRUPT) {
		size_t off = 0;

		restore_env();
		r->reason = (enum macc_blas_reason)m->reason;
		if (r->reason == MACC_BLAS_REFUSED) {
			off = refused_note(r->note, sizeof(r->note),
					   is_auto(m->requested) ? m->from : m->requested);
		}
		if (rc == 0) {
			snprintf(r->note + off, sizeof(r->note) - off,
				 "%ssgemm self-test passed (worst error %.1e)", off ? "; " : "",
				 worst);
		} else {
			snprintf(r->note + off, sizeof(r->note) - off,
				 "%ssgemm self-test not run: %s", off ? "; " : "", strerror(-rc));
		}
		return 0;
	}
	fb = *m;
	fb.step = STEP_FALLBACK;
	if (argv == NULL) {
		restore_env();
		return macc_errf(err, MACC_ECORRUPT, "BLAS kernel %s failed its sgemm self-test "
				 "(worst error %.1e)", m->to, worst);
	}
	if (sig != 0) {
		snprintf(fb.detail, sizeof(fb.detail), "signal=%d", sig);
	} else {
		snprintf(fb.detail, sizeof(fb.detail), "error=%.1e", worst);
	}
	rc = reexec(argv, &fb, m->from);
	restore_env();
	return macc_errf(err, MACC_ECORRUPT, "BLAS kernel %s failed its sgemm self-test (%s) and "
			 "the program could not be restarted with %s: %s", m->to, fb.detail,
			 m->from, strerror(-rc));
}

/* The request and where it came from. */
static const char *request(const char *cli, const char *config, int *ret_source)
{
	const char *env = getenv(ENV_WANT);

	if (!is_auto(cli)) {
		*ret_source = SRC_CLI;
		return cli;
	}
	if (!is_auto(env)) {
		*ret_source = SRC_ENV;
		return env;
	}
	if (!is_auto(config)) {
		*ret_source = SRC_CONFIG;
		return config;
	}
	*ret_source = getenv(ENV_CORETYPE) != NULL ? SRC_CORETYPE : SRC_DEFAULT;
	return "auto";
}

int macc_nn_blas_select(const char *cli, const char *config, char *const argv[],
			struct macc_blas_report *ret, struct macc_errmsg *err)
{
	struct macc_blas_report r;
	struct macc_blas_choice ch;
	struct macc_errmsg e;
	struct macc_cpuid cpu;
	struct mark m;
	int source, rc;
	const char *want = request(cli, config, &source);
	const char *user = getenv(ENV_CORETYPE);

	report_init(&r, want, source);
	if (parse_mark(getenv(ENV_MARK), &m) && m.pid == (long)getpid()) {
		report_init(&r, m.requested, m.source);
		if (macc_cpuid_read(&cpu) == 0) {
			macc_cpuid_describe(&cpu, r.cpu, sizeof(r.cpu));
		}
		rc = after_exec(&m, argv, &r, err);
		if (rc == 0) {
			*ret = r;
		}
		return rc;
	}
	unsetenv(ENV_MARK); /* not ours: inherited from some other process */
	unsetenv(ENV_ORIG);
	if (macc_cpuid_read(&cpu) < 0) {
		snprintf(r.cpu, sizeof(r.cpu), "not x86");
		snprintf(r.note, sizeof(r.note), "no x86 CPUID here: OpenBLAS's own choice");
		*ret = r;
		return 0;
	}
	macc_cpuid_describe(&cpu, r.cpu, sizeof(r.cpu));
	snprintf(r.detected, sizeof(r.detected), "%s", user != NULL ? "" : r.kernel);
	if (source == SRC_CORETYPE && kernel_find(r.kernel) != NULL &&
	    kernel_find(r.kernel)->forcible) {
		/* The user's own OPENBLAS_CORETYPE: kept like a request, if this CPU runs it. */
		rc = macc_blas_decide(&cpu, r.kernel, r.kernel, &ch, &e);
	} else {
		rc = macc_blas_decide(&cpu, r.kernel, want, &ch, &e);
	}
	if (rc < 0) {
		return macc_errf(err, rc, "%s: %s", r.source, e.text);
	}
	if (!is_auto(want)) {
		want = kernel_find(want)->name; /* decide() knows it: the canonical spelling */
		snprintf(r.requested, sizeof(r.requested), "%s", want);
	}
	if (ch.reason == MACC_BLAS_REFUSED) {
		refused_note(r.note, sizeof(r.note), is_auto(want) ? r.kernel : want);
	}
	if (strcasecmp(ch.kernel, r.kernel) == 0) {
		r.reason = ch.reason;
		*ret = r;
		return 0;
	}
	if (strstr(macc_nn_blas_config(), "DYNAMIC_ARCH") == NULL) {
		snprintf(r.note, sizeof(r.note), "OpenBLAS is built for one target: %s not taken",
			 ch.kernel);
	} else if (under_valgrind()) {
		snprintf(r.note, sizeof(r.note), "under valgrind: not re-executed to run %s",
			 ch.kernel);
	} else if (argv == NULL) {
		snprintf(r.note, sizeof(r.note), "%s would suit better (not re-executed)",
			 ch.kernel);
	} else {
		memset(&m, 0, sizeof(m));
		m.step = STEP_TRY;
		m.reason = (int)ch.reason;
		m.source = source;
		snprintf(m.from, sizeof(m.from), "%s", r.kernel);
		snprintf(m.to, sizeof(m.to), "%s", ch.kernel);
		snprintf(m.detected, sizeof(m.detected), "%s", r.detected);
		snprintf(m.requested, sizeof(m.requested), "%s", want);
		rc = reexec(argv, &m, ch.kernel);
		snprintf(r.note, sizeof(r.note), "could not re-execute to run %s: %s", ch.kernel,
			 strerror(-rc));
	}
	*ret = r;
	return 0;
}

void macc_nn_blas_describe(const struct macc_blas_report *r, char *buf, size_t len)
{
	char version[40] = "OpenBLAS";
	const char *cfg = macc_nn_blas_config();
	size_t off;

	/* "OpenBLAS 0.3.21 NO_LAPACKE ..." -> "OpenBLAS 0.3.21" */
	if (strncmp(cfg, "OpenBLAS ", 9) == 0) {
		snprintf(version, sizeof(version), "OpenBLAS %.*s", (int)strcspn(cfg + 9, " "),
			 cfg + 9);
	}
	off = (size_t)snprintf(buf, len, "%s (%s", r->kernel, macc_blas_reason_name(r->reason));
	if (off < len && r->detected[0] != '\0') {
		off += (size_t)snprintf(buf + off, len - off, "; %s chose %s", version,
					r->detected);
	} else if (off < len) {
		off += (size_t)snprintf(buf + off, len - off, "; %s", version);
	}
	if (off < len && strcmp(r->requested, "auto") != 0) {
		off += (size_t)snprintf(buf + off, len - off, "; %s asked by %s", r->requested,
					r->source);
	} else if (off < len && strcmp(r->source, sources[SRC_CORETYPE]) == 0) {
		off += (size_t)snprintf(buf + off, len - off, "; set by %s", ENV_CORETYPE);
	}
	if (off < len && r->note[0] != '\0') {
		off += (size_t)snprintf(buf + off, len - off, "; %s", r->note);
	}
	if (off < len) {
		snprintf(buf + off, len - off, "; CPU %s)", r->cpu);
	}
}
