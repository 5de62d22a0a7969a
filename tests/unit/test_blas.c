/*
 * test_blas.c - the OpenBLAS kernel choice (src/nn/blas.c).
 *
 * The decision is a pure function of CPUID words, the running kernel and the request, so it is
 * tested on made-up CPUs: the Emerald Rapids Xeon on which Debian's OpenBLAS 0.3.21
 * runs Prescott, the same CPU under an OS that does not save AVX-512 state, AMD Zen and family
 * 15h, an AVX-only Sandy Bridge, a Knights-Landing-like AVX-512F CPU without BW/DQ/VL, a CPU
 * without OSXSAVE. The self-test is run on OpenBLAS and on broken sgemms it must reject. The
 * selection's second stage (after the re-exec) is driven in-process through its marker variable;
 * tests/integration/test_blas.sh runs the real re-exec.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "macc/err.h"
#include "macc/nn.h"

/* Feature bits of the made-up CPUs (not the CPUID layout: cpu() places them). */
enum {
	C_SSE3 = 1 << 0,
	C_SSSE3 = 1 << 1,
	C_SSE41 = 1 << 2,
	C_SSE42 = 1 << 3,
	C_OSXSAVE = 1 << 4,
	C_AVX = 1 << 5,
	C_FMA = 1 << 6,
	C_AVX2 = 1 << 7,
	C_512F = 1 << 8,
	C_512CD = 1 << 9,
	C_512BW = 1 << 10,
	C_512DQ = 1 << 11,
	C_512VL = 1 << 12,
	C_FMA4 = 1 << 13,
	C_SSE4A = 1 << 14,
	C_PREFW = 1 << 15,
	C_BF16 = 1 << 16,
};

#define C_SSE (C_SSE3 | C_SSSE3 | C_SSE41 | C_SSE42)
#define C_HSW (C_SSE | C_OSXSAVE | C_AVX | C_FMA | C_AVX2)
#define C_SKX (C_HSW | C_512F | C_512CD | C_512BW | C_512DQ | C_512VL)

/* CPUID words for a vendor, display family/model and features; xcr0 as the OS would set it. */
static struct macc_cpuid cpu(const char *vendor, unsigned family, unsigned model, unsigned f,
			     uint64_t xcr0)
{
	struct macc_cpuid c;
	unsigned base_family = family >= 0xf ? 0xf : family;

	memset(&c, 0, sizeof(c));
	snprintf(c.vendor, sizeof(c.vendor), "%s", vendor);
	c.leaf1_eax = (base_family << 8) | ((model & 0xf) << 4) | (((model >> 4) & 0xf) << 16) |
		      (family >= 0xf ? (family - 0xf) << 20 : 0) | 0x2;
	c.leaf1_ecx = ((f & C_SSE3) ? 1u << 0 : 0) | ((f & C_SSSE3) ? 1u << 9 : 0) |
		      ((f & C_FMA) ? 1u << 12 : 0) | ((f & C_SSE41) ? 1u << 19 : 0) |
		      ((f & C_SSE42) ? 1u << 20 : 0) | ((f & C_OSXSAVE) ? 1u << 27 : 0) |
		      ((f & C_AVX) ? 1u << 28 : 0);
	c.leaf7_ebx = ((f & C_AVX2) ? 1u << 5 : 0) | ((f & C_512F) ? 1u << 16 : 0) |
		      ((f & C_512DQ) ? 1u << 17 : 0) | ((f & C_512CD) ? 1u << 28 : 0) |
		      ((f & C_512BW) ? 1u << 30 : 0) | ((f & C_512VL) ? 1u << 31 : 0);
	c.leaf7s1_eax = (f & C_BF16) ? 1u << 5 : 0;
	c.ext1_ecx = ((f & C_SSE4A) ? 1u << 6 : 0) | ((f & C_PREFW) ? 1u << 8 : 0) |
		     ((f & C_FMA4) ? 1u << 16 : 0);
	c.xcr0 = (f & C_OSXSAVE) ? xcr0 : 0;
	return c;
}

/* An Emerald Rapids Xeon: family 6 model 207 (0xCF), AVX-512, Linux saving all of it. */
static struct macc_cpuid emerald(uint64_t xcr0)
{
	return cpu("GenuineIntel", 6, 0xcf, C_SKX | C_BF16 | C_PREFW, xcr0);
}

static struct macc_cpuid zen3(void)
{
	return cpu("AuthenticAMD", 25, 1, C_HSW | C_SSE4A | C_PREFW, 0x7);
}

static void expect(const struct macc_cpuid *c, const char *running, const char *want,
		   const char *kernel, enum macc_blas_reason reason)
{
	struct macc_blas_choice ch;
	struct macc_errmsg e = {{0}};
	int rc = macc_blas_decide(c, running, want, &ch, &e);

	if (rc != 0 || strcmp(ch.kernel, kernel) != 0 || ch.reason != reason) {
		fail_msg("%s running %s, asked %s: got %d %s (%s), expected %s (%s) [%s]",
			 c->vendor, running, want ? want : "(null)", rc, rc == 0 ? ch.kernel : "-",
			 rc == 0 ? macc_blas_reason_name(ch.reason) : "-", kernel,
			 macc_blas_reason_name(reason), e.text);
	}
}

static void test_decide_fallback_upgraded(void **state)
{
	struct macc_cpuid er = emerald(0xe7), er_noavx512 = emerald(0x7);
	struct macc_cpuid z = zen3(), hygon = zen3();
	struct macc_cpuid snb = cpu("GenuineIntel", 6, 0x2a, C_SSE | C_OSXSAVE | C_AVX, 0x7);

	(void)state;
	/* OpenBLAS 0.3.21's Prescott on the Xeon: the AVX-512 kernel. */
	expect(&er, "Prescott", NULL, "SkylakeX", MACC_BLAS_UPGRADE);
	expect(&er, "Prescott", "auto", "SkylakeX", MACC_BLAS_UPGRADE);
	expect(&er, "Prescott", "", "SkylakeX", MACC_BLAS_UPGRADE);
	expect(&er, "Nehalem", "AUTO", "SkylakeX", MACC_BLAS_UPGRADE);
	expect(&er, "Sandybridge", NULL, "SkylakeX", MACC_BLAS_UPGRADE);
	expect(&er, "Haswell", NULL, "SkylakeX", MACC_BLAS_UPGRADE);
	/* The OS does not save ZMM/opmask state: AVX-512 is not usable, AVX2 is. */
	expect(&er_noavx512, "Prescott", NULL, "Haswell", MACC_BLAS_UPGRADE);
	expect(&er_noavx512, "Haswell", NULL, "Haswell", MACC_BLAS_KEEP);
	/* AMD (and Hygon, which OpenBLAS treats alike) get the Zen kernels. */
	expect(&z, "Prescott", NULL, "Zen", MACC_BLAS_UPGRADE);
	snprintf(hygon.vendor, sizeof(hygon.vendor), "HygonGenuine");
	expect(&hygon, "Nehalem", NULL, "Zen", MACC_BLAS_UPGRADE);
	/* AVX without AVX2. */
	expect(&snb, "Prescott", NULL, "Sandybridge", MACC_BLAS_UPGRADE);
	expect(&snb, "Core2", NULL, "Sandybridge", MACC_BLAS_UPGRADE);
}

static void test_decide_correct_kept(void **state)
{
	struct macc_cpuid er = emerald(0xe7), z = zen3();
	struct macc_cpuid skl = cpu("GenuineIntel", 6, 0x5e, C_HSW, 0x7);
	struct macc_cpuid exc = cpu("AuthenticAMD", 21, 0x60, C_HSW | C_FMA4 | C_SSE4A | C_PREFW,
				    0x7);
	struct macc_cpuid pd = cpu("AuthenticAMD", 21, 0x02, (C_HSW & ~C_AVX2) | C_FMA4 | C_SSE4A |
				   C_PREFW, 0x7);

	(void)state;
	/* Where OpenBLAS detected the CPU right, nothing changes. */
	expect(&er, "SkylakeX", NULL, "SkylakeX", MACC_BLAS_KEEP);
	expect(&er, "Cooperlake", NULL, "Cooperlake", MACC_BLAS_KEEP);
	expect(&z, "Zen", NULL, "Zen", MACC_BLAS_KEEP);
	expect(&z, "Haswell", NULL, "Haswell", MACC_BLAS_KEEP); /* same level and instructions */
	expect(&skl, "Haswell", NULL, "Haswell", MACC_BLAS_KEEP);
	expect(&skl, "haswell", NULL, "Haswell", MACC_BLAS_KEEP);
	/* AMD family 15h kernels are OpenBLAS's own choice for those CPUs. */
	expect(&exc, "Excavator", NULL, "Excavator", MACC_BLAS_KEEP);
	expect(&pd, "Piledriver", NULL, "Piledriver", MACC_BLAS_KEEP);
	/* A name this table does not know (a newer OpenBLAS): kept. */
	expect(&er, "SapphireRapids", NULL, "SapphireRapids", MACC_BLAS_KEEP);
	expect(&z, "Zen4", "auto", "Zen4", MACC_BLAS_KEEP);
}

static void test_decide_never_unsupported(void **state)
{
	struct macc_cpuid z = zen3(), er = emerald(0xe7);
	/* AVX-512 F and CD but no BW, DQ, VL (Knights Landing): not enough for SkylakeX. */
	struct macc_cpuid knl = cpu("GenuineIntel", 6, 0x57, C_HSW | C_512F | C_512CD, 0xe7);
	/* No OSXSAVE: the OS saves no AVX state at all, whatever the CPU has. */
	struct macc_cpuid noxs = cpu("GenuineIntel", 6, 0xcf, C_SKX & ~C_OSXSAVE, 0xe7);
	struct macc_cpuid old = cpu("AuthenticAMD", 15, 0x05, 0, 0);

	(void)state;
	expect(&knl, "Haswell", NULL, "Haswell", MACC_BLAS_KEEP);
	expect(&knl, "Prescott", NULL, "Haswell", MACC_BLAS_UPGRADE);
	expect(&knl, "Haswell", "SkylakeX", "Haswell", MACC_BLAS_REFUSED);
	expect(&noxs, "Prescott", NULL, "Prescott", MACC_BLAS_KEEP);
	expect(&noxs, "Nehalem", NULL, "Nehalem", MACC_BLAS_KEEP);
	expect(&noxs, "Prescott", "Haswell", "Prescott", MACC_BLAS_REFUSED);
	/* Asked for (or set in OPENBLAS_CORETYPE) but beyond this CPU. */
	expect(&z, "Zen", "SkylakeX", "Zen", MACC_BLAS_REFUSED);
	expect(&z, "SkylakeX", NULL, "Zen", MACC_BLAS_REFUSED);
	expect(&z, "Prescott", "SkylakeX", "Zen", MACC_BLAS_REFUSED);
	/* AMD-only kernels (FMA4, SSE4A) on an Intel CPU. */
	expect(&er, "SkylakeX", "Bulldozer", "SkylakeX", MACC_BLAS_REFUSED);
	expect(&er, "SkylakeX", "Barcelona", "SkylakeX", MACC_BLAS_REFUSED);
	/* A CPU without SSE3 has nothing better than what runs. */
	expect(&old, "Prescott", NULL, "Prescott", MACC_BLAS_KEEP);
}

static void test_decide_explicit(void **state)
{
	struct macc_cpuid er = emerald(0xe7), z = zen3();
	struct macc_blas_choice ch = {{0}, MACC_BLAS_KEEP};
	struct macc_errmsg e = {{0}};

	(void)state;
	expect(&er, "Prescott", "skylakex", "SkylakeX", MACC_BLAS_EXPLICIT);
	expect(&er, "SkylakeX", "Prescott", "Prescott", MACC_BLAS_EXPLICIT);
	expect(&er, "SkylakeX", "HASWELL", "Haswell", MACC_BLAS_EXPLICIT);
	expect(&z, "Zen", "Sandybridge", "Sandybridge", MACC_BLAS_EXPLICIT);
	expect(&z, "Zen", "Zen", "Zen", MACC_BLAS_EXPLICIT);
	expect(&z, "Zen", "Barcelona", "Barcelona", MACC_BLAS_EXPLICIT);
	/* Unknown names, and Cooperlake (0.3.21 cannot force it), are errors naming the value. */
	assert_int_equal(macc_blas_decide(&z, "Zen", "Skylake", &ch, &e), MACC_ECONFIG);
	assert_non_null(strstr(e.text, "'Skylake'"));
	assert_non_null(strstr(e.text, "SkylakeX"));
	assert_int_equal(macc_blas_decide(&er, "SkylakeX", "Cooperlake", &ch, &e), MACC_ECONFIG);
	assert_int_equal(macc_blas_decide(&er, "SkylakeX", "Katmai", &ch, &e), MACC_ECONFIG);
	assert_string_equal(ch.kernel, ""); /* untouched on failure */
}

static void test_describe(void **state)
{
	struct macc_cpuid er = emerald(0xe7), z = zen3(), er7 = emerald(0x7);
	char buf[200];

	(void)state;
	macc_cpuid_describe(&er, buf, sizeof(buf));
	assert_non_null(strstr(buf, "GenuineIntel family 6 model 207:"));
	assert_non_null(strstr(buf, " avx2 fma "));
	assert_non_null(strstr(buf, "avx512(f,cd,bw,dq,vl) avx512_bf16"));
	macc_cpuid_describe(&er7, buf, sizeof(buf));
	assert_null(strstr(buf, "avx512"));
	macc_cpuid_describe(&z, buf, sizeof(buf));
	assert_non_null(strstr(buf, "AuthenticAMD family 25 model 1:"));
	assert_null(strstr(buf, "avx512"));
	assert_string_equal(macc_blas_reason_name(MACC_BLAS_UPGRADE), "upgraded");
	assert_string_equal(macc_blas_reason_name(MACC_BLAS_FALLBACK), "fallback");
}

/* This machine's CPUID agrees with what Linux shows in /proc/cpuinfo for the sets that decide
 * the kernel (Linux clears the AVX flags too when it does not save their state). */
static void test_cpuid_this_machine(void **state)
{
	struct macc_cpuid c;
	char desc[200], line[8192] = "";
	FILE *f;
	bool avx2 = false, avx512 = false, fma = false;

	(void)state;
	if (macc_cpuid_read(&c) == -ENOTSUP) {
		skip();
	}
	f = fopen("/proc/cpuinfo", "r");
	if (f == NULL) {
		skip();
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "flags", 5) == 0) {
			strcat(line, " ");
			avx2 = strstr(line, " avx2 ") != NULL;
			fma = strstr(line, " fma ") != NULL;
			avx512 = strstr(line, " avx512f ") && strstr(line, " avx512bw ") &&
				 strstr(line, " avx512dq ") && strstr(line, " avx512vl ") &&
				 strstr(line, " avx512cd ");
			break;
		}
	}
	fclose(f);
	macc_cpuid_describe(&c, desc, sizeof(desc));
	strcat(desc, " ");
	print_message("cpu: %s\n", desc);
	assert_int_equal(strstr(desc, " avx2 ") != NULL, avx2);
	assert_int_equal(strstr(desc, " fma ") != NULL, fma);
	assert_int_equal(strstr(desc, " avx512(") != NULL, avx512);
}

static void test_selftest_openblas(void **state)
{
	double worst = -1.0;

	(void)state;
	unsetenv("MACC_BLAS_SELFTEST_FAULT");
	assert_int_equal(macc_nn_blas_selftest(&worst), 0);
	print_message("kernel %s: worst relative error %.2e\n", macc_nn_blas_kernel(), worst);
	assert_true(worst >= 0.0 && worst < 1e-5);
}

/* Reference sgemm for the broken variants: float accumulation, row-major. */
struct brk {
	int mode; /* 0 correct (in float), 1 drops the last k term, 2 one NaN, 3 one element x1.001 */
};

static void naive_sgemm(void *ctx, bool ta, bool tb, int m, int n, int k, float alpha,
			const float *a, int lda, const float *b, int ldb, float beta, float *c,
			int ldc)
{
	const struct brk *bk = ctx;

	for (int i = 0; i < m; i++) {
		for (int j = 0; j < n; j++) {
			float s = 0.0f;
			int kk = bk->mode == 1 ? k - 1 : k;

			for (int p = kk - 1; p >= 0; p--) { /* another order than the oracle's */
				s += (ta ? a[p * lda + i] : a[i * lda + p]) *
				     (tb ? b[j * ldb + p] : b[p * ldb + j]);
			}
			c[i * ldc + j] = alpha * s + beta * c[i * ldc + j];
		}
	}
	if (bk->mode == 2) {
		c[(m - 1) * ldc + n - 1] = NAN;
	} else if (bk->mode == 3) {
		c[0] *= 1.001f;
	}
}

static void test_selftest_rejects_wrong_products(void **state)
{
	struct brk bk = {0};
	double worst = 0.0;

	(void)state;
	/* Float rounding in another summation order passes ... */
	assert_int_equal(macc_blas_selftest_with(naive_sgemm, &bk, &worst), 0);
	print_message("naive float sgemm: worst %.2e\n", worst);
	assert_true(worst < 1e-5);
	/* ... a missing term, a NaN, one element 0.1 % off do not. */
	bk.mode = 1;
	assert_int_equal(macc_blas_selftest_with(naive_sgemm, &bk, &worst), MACC_ECORRUPT);
	print_message("missing term: worst %.2e\n", worst);
	assert_true(worst > 1e-3);
	bk.mode = 2;
	assert_int_equal(macc_blas_selftest_with(naive_sgemm, &bk, &worst), MACC_ECORRUPT);
	assert_true(isinf(worst));
	bk.mode = 3;
	assert_int_equal(macc_blas_selftest_with(naive_sgemm, &bk, &worst), MACC_ECORRUPT);
	print_message("one element 0.1 %% off: worst %.2e\n", worst);
	/* The fault the integration test injects into a named kernel. */
	setenv("MACC_BLAS_SELFTEST_FAULT", macc_nn_blas_kernel(), 1);
	assert_int_equal(macc_nn_blas_selftest(&worst), MACC_ECORRUPT);
	setenv("MACC_BLAS_SELFTEST_FAULT", "NotThisOne", 1);
	assert_int_equal(macc_nn_blas_selftest(&worst), 0);
	unsetenv("MACC_BLAS_SELFTEST_FAULT");
}

static void clear_env(void)
{
	unsetenv("MACC_BLAS_KERNEL");
	unsetenv("MACC_BLAS_REEXEC");
	unsetenv("MACC_BLAS_ORIG_CORETYPE");
	unsetenv("MACC_BLAS_SELFTEST_FAULT");
	unsetenv("OPENBLAS_CORETYPE");
}

/* Without argv nothing is re-executed: the report says what runs, where requests came from, and
 * unknown names are errors naming their source. */
static void test_select_in_process(void **state)
{
	struct macc_blas_report r;
	struct macc_cpuid c;
	struct macc_errmsg e = {{0}};
	char line[512];

	(void)state;
	clear_env();
	assert_int_equal(macc_nn_blas_select(NULL, NULL, NULL, &r, &e), 0);
	assert_string_equal(r.kernel, macc_nn_blas_kernel());
	assert_string_equal(r.requested, "auto");
	assert_string_equal(r.source, "default");
	macc_nn_blas_describe(&r, line, sizeof(line));
	print_message("%s\n", line);
	assert_non_null(strstr(line, macc_nn_blas_kernel()));
	assert_non_null(strstr(line, "OpenBLAS"));
	if (macc_cpuid_read(&c) == -ENOTSUP) {
		/* not x86: the kernel names are OpenBLAS's x86-64 list, not checked here */
		return;
	}

	assert_int_equal(macc_nn_blas_select("bogus", NULL, NULL, &r, &e), MACC_ECONFIG);
	assert_non_null(strstr(e.text, "command line: unknown OpenBLAS kernel 'bogus'"));
	setenv("MACC_BLAS_KERNEL", "bogus2", 1);
	assert_int_equal(macc_nn_blas_select(NULL, "Haswell", NULL, &r, &e), MACC_ECONFIG);
	assert_non_null(strstr(e.text, "MACC_BLAS_KERNEL: unknown OpenBLAS kernel 'bogus2'"));
	unsetenv("MACC_BLAS_KERNEL");
	assert_int_equal(macc_nn_blas_select(NULL, "bogus3", NULL, &r, &e), MACC_ECONFIG);
	assert_non_null(strstr(e.text, "config: unknown"));
	/* The command line beats the environment, which beats the config. */
	setenv("MACC_BLAS_KERNEL", "prescott", 1);
	assert_int_equal(macc_nn_blas_select(NULL, "Nehalem", NULL, &r, &e), 0);
	assert_string_equal(r.requested, "Prescott");
	assert_string_equal(r.source, "MACC_BLAS_KERNEL");
	assert_int_equal(macc_nn_blas_select("Nehalem", "Prescott", NULL, &r, &e), 0);
	assert_string_equal(r.requested, "Nehalem");
	assert_string_equal(r.source, "command line");
	assert_string_equal(r.kernel, macc_nn_blas_kernel()); /* not re-executed */
	unsetenv("MACC_BLAS_KERNEL");
	/* A marker left by another process is ignored and removed. */
	setenv("MACC_BLAS_REEXEC", "1:1:1:Prescott:Haswell:Prescott:0:auto:-", 1);
	assert_int_equal(macc_nn_blas_select(NULL, NULL, NULL, &r, &e), 0);
	assert_null(getenv("MACC_BLAS_REEXEC"));
	assert_string_equal(r.source, "default");
	clear_env();
}

static void set_mark(int step, int reason, const char *from, const char *to, const char *detail)
{
	char v[256];

	snprintf(v, sizeof(v), "%ld:%d:%d:%s:%s:%s:0:auto:%s", (long)getpid(), step, reason, from,
		 to, from, detail);
	setenv("MACC_BLAS_REEXEC", v, 1);
}

/* The image after the re-exec, driven through the marker variable: a kernel that OpenBLAS took
 * is self-tested (in a child) and kept; a fallback is reported; the user's OPENBLAS_CORETYPE is
 * put back; a failed self-test without argv to re-execute is an error, never a loop. */
static void test_select_after_exec(void **state)
{
	struct macc_blas_report r;
	struct macc_errmsg e = {{0}};
	const char *k = macc_nn_blas_kernel();

	(void)state;
	clear_env();
	set_mark(1, MACC_BLAS_UPGRADE, "Prescott", k, "-");
	setenv("OPENBLAS_CORETYPE", k, 1);
	setenv("MACC_BLAS_ORIG_CORETYPE", "Nehalem", 1);
	/* Even with SIGCHLD ignored (inherited), the self-test child is waited for. */
	signal(SIGCHLD, SIG_IGN);
	assert_int_equal(macc_nn_blas_select(NULL, NULL, NULL, &r, &e), 0);
	assert_true(signal(SIGCHLD, SIG_DFL) == SIG_IGN);
	assert_int_equal(r.reason, MACC_BLAS_UPGRADE);
	assert_string_equal(r.detected, "Prescott");
	assert_non_null(strstr(r.note, "sgemm self-test passed"));
	assert_string_equal(getenv("OPENBLAS_CORETYPE"), "Nehalem"); /* the user's, back */
	assert_null(getenv("MACC_BLAS_ORIG_CORETYPE"));
	assert_null(getenv("MACC_BLAS_REEXEC"));
	unsetenv("OPENBLAS_CORETYPE");

	set_mark(2, MACC_BLAS_UPGRADE, k, "SkylakeX", "error=1.0e-02");
	assert_int_equal(macc_nn_blas_select(NULL, NULL, NULL, &r, &e), 0);
	assert_int_equal(r.reason, MACC_BLAS_FALLBACK);
	assert_non_null(strstr(r.note, "SkylakeX failed its sgemm self-test (error=1.0e-02)"));
	assert_null(getenv("OPENBLAS_CORETYPE"));
	assert_null(getenv("MACC_BLAS_REEXEC"));

	set_mark(1, MACC_BLAS_EXPLICIT, "Prescott", strcmp(k, "Haswell") ? "Haswell" : "Zen", "-");
	assert_int_equal(macc_nn_blas_select(NULL, NULL, NULL, &r, &e), 0);
	assert_int_equal(r.reason, MACC_BLAS_UNCHANGED);
	assert_non_null(strstr(r.note, "OpenBLAS did not take"));

	set_mark(1, MACC_BLAS_UPGRADE, "Prescott", k, "-");
	setenv("MACC_BLAS_SELFTEST_FAULT", k, 1);
	assert_int_equal(macc_nn_blas_select(NULL, NULL, NULL, &r, &e), MACC_ECORRUPT);
	assert_non_null(strstr(e.text, "failed its sgemm self-test"));
	assert_null(getenv("MACC_BLAS_REEXEC"));
	clear_env();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decide_fallback_upgraded),
		cmocka_unit_test(test_decide_correct_kept),
		cmocka_unit_test(test_decide_never_unsupported),
		cmocka_unit_test(test_decide_explicit),
		cmocka_unit_test(test_describe),
		cmocka_unit_test(test_cpuid_this_machine),
		cmocka_unit_test(test_selftest_openblas),
		cmocka_unit_test(test_selftest_rejects_wrong_products),
		cmocka_unit_test(test_select_in_process),
		cmocka_unit_test(test_select_after_exec),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
