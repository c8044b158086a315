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

/* The token counts a log is priced by (checked: the parts within the whole). */
typedef struct PricesTokens
{
	int64		prompt;			/* every prompt token, cached ones included */
	int64		completion;
	int64		cached;			/* prompt tokens read from a prompt cache */
	int64		cache_write;	/* prompt tokens written to it */
} PricesTokens;

extern void prices_init(void);
extern Numeric prices_cost(const char *model, const PricesTokens *tokens);

#endif							/* ANALYTICS_PRICES_H */
