/*-------------------------------------------------------------------------
 *
 * prices.c
 *	  Model prices: the cost the insert trigger fills in for a log that
 *	  gives none, from analytics.model_prices.
 *
 * A model's price is the model_prices row with the longest model name the
 * log's model starts with.  Prompt tokens read from a prompt cache and
 * those written to it have prices of their own (null: the prompt price);
 * the rest of the prompt is priced at the prompt price (SPEC section 12).
 * Prices are cached per transaction (the cache lives in the transaction's
 * memory); the statement trigger model_prices_changed drops the cache when
 * the table is edited, so the next log of the session reads the table
 * afresh.  Reads take no row lock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "analytics.h"
#include "prices.h"

PG_FUNCTION_INFO_V1(model_prices_changed);

/* A cached price; the key is a palloc'd model name. */
typedef struct PriceEntry
{
	char	   *key;
	bool		found;			/* false: no row matches, the cost is 0 */
	Numeric		prompt_per_million;
	Numeric		completion_per_million;
	Numeric		cached_prompt_per_million;	/* the prompt price when null */
	Numeric		cache_write_per_million;	/* the prompt price when null */
} PriceEntry;

/* Per-transaction price cache. */
static MemoryContext price_context = NULL;
static HTAB *price_cache = NULL;

static SPIPlanPtr price_plan = NULL;

static Numeric numeric_zero;
static Numeric numeric_million;

/*
 * prices_forget
 *		Forget the cache; its memory goes with the transaction's.
 */
static void
prices_forget(void)
{
	price_context = NULL;
	price_cache = NULL;
}

static void
prices_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			prices_forget();
			break;
		default:
			break;
	}
}

/*
 * prices_init
 *		Register the transaction callback; called from _PG_init.
 */
void
prices_init(void)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	numeric_zero = int64_to_numeric(0);
	numeric_million = int64_to_numeric(1000000);
	MemoryContextSwitchTo(old);

	RegisterXactCallback(prices_xact_callback, NULL);
}

/*
 * price_column
 *		Column n of the price query's one row, copied into the current
 *		memory context.
 */
static Numeric
price_column(int n)
{
	bool		isnull;

	return DatumGetNumericCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											 n, &isnull));
}

/*
 * price_lookup
 *		The price entry for a model: the longest model_prices.model that the
 *		name starts with.  Cached per transaction; model_prices_changed()
 *		drops the cache when the table is edited.
 */
static const PriceEntry *
price_lookup(const char *model)
{
	PriceEntry *entry;
	char	   *key = (char *) model;
	bool		found;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	SPIPlanPtr	plan;
	PriceEntry	price = {0};

	if (price_cache == NULL)
	{
		price_context = AllocSetContextCreate(TopTransactionContext,
											  "analytics prices",
											  ALLOCSET_SMALL_SIZES);
		price_cache = analytics_string_cache_create("analytics prices",
													sizeof(PriceEntry),
													price_context);
	}
	entry = hash_search(price_cache, &key, HASH_FIND, NULL);
	if (entry != NULL)
		return entry;

	values[0] = CStringGetTextDatum(model);
	SPI_connect();
	plan = analytics_prepare(&price_plan,
							 "SELECT prompt_per_million, completion_per_million, "
							 "coalesce(cached_prompt_per_million, prompt_per_million), "
							 "coalesce(cache_write_per_million, prompt_per_million) "
							 "FROM analytics.model_prices "
							 "WHERE pg_catalog.starts_with($1, model) "
							 "ORDER BY pg_catalog.length(model) DESC LIMIT 1",
							 1, argtypes);
	if (SPI_execute_plan(plan, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read model prices");
	if (SPI_processed == 1)
	{
		MemoryContext old = MemoryContextSwitchTo(price_context);

		price.found = true;
		price.prompt_per_million = price_column(1);
		price.completion_per_million = price_column(2);
		price.cached_prompt_per_million = price_column(3);
		price.cache_write_per_million = price_column(4);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();

	key = MemoryContextStrdup(price_context, model);
	entry = hash_search(price_cache, &key, HASH_ENTER, &found);
	price.key = key;
	*entry = price;
	return entry;
}

/*
 * price_times
 *		tokens * per_million, added to sum.
 */
static Numeric
price_times(Numeric sum, int64 tokens, Numeric per_million)
{
	return numeric_add_opt_error(sum,
								 numeric_mul_opt_error(int64_to_numeric(tokens),
													   per_million, NULL),
								 NULL);
}

/*
 * prices_cost
 *		cost = (fresh prompt * prompt price + cached * cached price
 *		+ cache writes * cache write price + completion * completion price)
 *		/ 1e6, where the fresh prompt is prompt - cached - cache writes; 0
 *		for a model without a price.  The caller checked that the parts are
 *		within the prompt.  Inside a transaction.
 */
Numeric
prices_cost(const char *model, const PricesTokens *tokens)
{
	const PriceEntry *price = price_lookup(model);
	Numeric		sum = numeric_zero;

	if (!price->found)
		return numeric_zero;
	Assert(tokens->cached + tokens->cache_write <= tokens->prompt);
	sum = price_times(sum, tokens->prompt - tokens->cached - tokens->cache_write,
					  price->prompt_per_million);
	sum = price_times(sum, tokens->cached, price->cached_prompt_per_million);
	sum = price_times(sum, tokens->cache_write, price->cache_write_per_million);
	sum = price_times(sum, tokens->completion, price->completion_per_million);
	sum = numeric_div_opt_error(sum, numeric_million, NULL);
	return DatumGetNumeric(DirectFunctionCall1(numeric_trim_scale,
											   NumericGetDatum(sum)));
}

/*
 * model_prices_changed
 *		Statement trigger on analytics.model_prices: forget cached prices.
 */
Datum
model_prices_changed(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "model_prices_changed must be a trigger");
	prices_forget();
	return PointerGetDatum(NULL);
}
