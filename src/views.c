/*-------------------------------------------------------------------------
 *
 * views.c
 *	  C behind the views of analytics: the aggregate that picks a
 *	  customer's top model.
 *
 * analytics._top_model(model, requests) sums requests per model within a
 * group and returns the model with the most, ties going to the first name in
 * the input collation's order.  It lets analytics.users compute every column
 * in one aggregation pass over the rollups instead of a second GROUP BY
 * customer, model.  Its state lives in the aggregate's memory context.
 * (The period bounds the views show come from periods.c.)
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/varlena.h"

PG_FUNCTION_INFO_V1(views_top_model_step);
PG_FUNCTION_INFO_V1(views_top_model_final);

/* One model and its requests so far, in a _top_model group. */
typedef struct TopModelEntry
{
	text	   *model;
	int64		requests;
} TopModelEntry;

/* State of a _top_model group: a customer has a handful of models. */
typedef struct TopModelState
{
	int			count;
	int			capacity;
	TopModelEntry *entries;
} TopModelState;

/*
 * analytics._top_model_step(state internal, model text, requests bigint)
 *		Transition function of analytics._top_model: adds requests to the
 *		model's total.  Null models and null requests are skipped.  Must run
 *		as an aggregate; allocates in the aggregate context.
 */
Datum
views_top_model_step(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext;
	MemoryContext old;
	TopModelState *state;
	text	   *model;
	Size		len;
	int			i;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "views_top_model_step called in non-aggregate context");

	if (PG_ARGISNULL(0))
	{
		state = MemoryContextAllocZero(aggcontext, sizeof(TopModelState));
		state->capacity = 8;
		state->entries = MemoryContextAlloc(aggcontext,
											state->capacity * sizeof(TopModelEntry));
	}
	else
		state = (TopModelState *) PG_GETARG_POINTER(0);

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_POINTER(state);

	model = PG_GETARG_TEXT_PP(1);
	len = VARSIZE_ANY_EXHDR(model);
	for (i = 0; i < state->count; i++)
	{
		text	   *known = state->entries[i].model;

		if (VARSIZE_ANY_EXHDR(known) == len &&
			memcmp(VARDATA_ANY(known), VARDATA_ANY(model), len) == 0)
		{
			state->entries[i].requests += PG_GETARG_INT64(2);
			PG_RETURN_POINTER(state);
		}
	}

	if (state->count == state->capacity)
	{
		state->capacity *= 2;
		state->entries = repalloc(state->entries,
								  state->capacity * sizeof(TopModelEntry));
	}
	old = MemoryContextSwitchTo(aggcontext);
	state->entries[state->count].model =
		cstring_to_text_with_len(VARDATA_ANY(model), len);
	MemoryContextSwitchTo(old);
	state->entries[state->count].requests = PG_GETARG_INT64(2);
	state->count++;
	PG_RETURN_POINTER(state);
}

/*
 * analytics._top_model_final(state internal) returns text
 *		The model with the most requests; ties go to the name that sorts
 *		first in the aggregate's input collation.  Null for an empty group.
 */
Datum
views_top_model_final(PG_FUNCTION_ARGS)
{
	TopModelState *state;
	Oid			collation = PG_GET_COLLATION();
	int			best = -1;
	int			i;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	state = (TopModelState *) PG_GETARG_POINTER(0);
	if (!OidIsValid(collation))
		collation = DEFAULT_COLLATION_OID;

	for (i = 0; i < state->count; i++)
	{
		TopModelEntry *e = &state->entries[i];

		if (best < 0 || e->requests > state->entries[best].requests ||
			(e->requests == state->entries[best].requests &&
			 varstr_cmp(VARDATA_ANY(e->model), VARSIZE_ANY_EXHDR(e->model),
						VARDATA_ANY(state->entries[best].model),
						VARSIZE_ANY_EXHDR(state->entries[best].model),
						collation) < 0))
			best = i;
	}
	if (best < 0)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(state->entries[best].model);
}
