/*-------------------------------------------------------------------------
 *
 * prices.h
 *	  Model prices: the cost of a log from analytics.model_prices.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_PRICES_H
#define ANALYTICS_PRICES_H

#include "utils/numeric.h"

extern void prices_init(void);
extern Numeric prices_cost(const char *model, int32 prompt_tokens,
						   int32 completion_tokens);

#endif							/* ANALYTICS_PRICES_H */
