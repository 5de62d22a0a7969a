/*
 * optim.c - the local optimiser (heavy-ball / Nesterov momentum SGD) and learning-rate
 * schedules.
 *
 * The step is one fused pass over the flat blocks instead of a chain of BLAS vector calls:
 * it reads x, v and g once and writes x and v once, which is what bounds it (memory traffic).
 * The expressions are evaluated exactly as written in nn.h, in float, element by element, so
 * the consensus code and the tests can reproduce them bit for bit.
 *
 * Schedules are pure functions of the (fractional) epoch, so a restarted agent computes the
 * same rate from its checkpointed round without any stored schedule state.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "macc/nn.h"

void macc_sgd_step(size_t n, float *x, float *v, const float *g, float alpha, float beta,
		   bool nesterov)
{
	if (nesterov) {
		for (size_t i = 0; i < n; i++) {
			float vi = beta * v[i] - alpha * g[i];

			v[i] = vi;
			x[i] = x[i] + (beta * vi - alpha * g[i]);
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			float vi = beta * v[i] - alpha * g[i];

			v[i] = vi;
			x[i] = x[i] + vi;
		}
	}
}

int macc_lr_parse(const char *spec, float base, struct macc_lr_schedule *ret,
		  struct macc_errmsg *err)
{
	struct macc_lr_schedule s = {.kind = MACC_LR_CONST, .base = base, .step_every = 0,
				     .step_gamma = 1.0f};

	if (!spec) {
		return macc_errf(err, MACC_ESPEC, "learning-rate schedule missing");
	}
	if (!(base > 0.0f) || !isfinite(base)) {
		return macc_errf(err, MACC_ESPEC, "learning rate %g must be a positive number",
				 (double)base);
	}
	if (strcmp(spec, "const") == 0) {
		s.kind = MACC_LR_CONST;
	} else if (strcmp(spec, "cosine") == 0) {
		s.kind = MACC_LR_COSINE;
	} else if (strncmp(spec, "step:", 5) == 0) {
		const char *p = spec + 5;
		char *end;
		unsigned long every;
		double gamma;

		if (*p < '0' || *p > '9') {
			goto bad_step;
		}
		errno = 0;
		every = strtoul(p, &end, 10);
		if (errno || end == p || *end != ':' || every == 0 || every > UINT32_MAX) {
			goto bad_step;
		}
		p = end + 1;
		errno = 0;
		gamma = strtod(p, &end);
		if (errno || end == p || *end || !(gamma > 0.0 && gamma <= 1.0)) {
			goto bad_step;
		}
		s.kind = MACC_LR_STEP;
		s.step_every = (uint32_t)every;
		s.step_gamma = (float)gamma;
	} else {
		return macc_errf(err, MACC_ESPEC, "learning-rate schedule '%s': unknown (known: "
				 "const, step:EVERY:GAMMA, cosine)", spec);
	}
	*ret = s;
	return 0;
bad_step:
	return macc_errf(err, MACC_ESPEC, "learning-rate schedule '%s': want step:EVERY:GAMMA "
			 "with EVERY a positive integer (epochs) and GAMMA in (0, 1]", spec);
}

float macc_lr_at(const struct macc_lr_schedule *s, double epoch, double total_epochs)
{
	if (epoch < 0.0) {
		epoch = 0.0;
	}
	switch (s->kind) {
	case MACC_LR_STEP:
		return (float)((double)s->base *
			       pow((double)s->step_gamma, floor(epoch / (double)s->step_every)));
	case MACC_LR_COSINE:
		if (!(total_epochs > 0.0)) {
			return s->base;
		}
		if (epoch > total_epochs) {
			epoch = total_epochs;
		}
		return (float)((double)s->base * 0.5 * (1.0 + cos(M_PI * epoch / total_epochs)));
	case MACC_LR_CONST:
		break;
	}
	return s->base;
}
