-- Piece 90: make pg_dump/pg_restore round trips work.
--
-- CREATE EXTENSION seeds model_prices and the rollup_state row, and a dump
-- holds those tables' rows as they were when dumped.  So that restoring the
-- dump neither fails on the seeded keys nor keeps stale seeded values, an
-- INSERT of a key that exists replaces that row.

CREATE FUNCTION analytics.replace_on_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, analytics AS $$
DECLARE
    replaced bigint;
BEGIN
    -- On a Citus node the trigger fires on a shard, <table>_<shardid>:
    -- update the relation the row goes to.
    IF pg_catalog.regexp_replace(TG_TABLE_NAME, '_[0-9]+$', '') OPERATOR(pg_catalog.=) 'model_prices' THEN
        EXECUTE pg_catalog.format('UPDATE %I.%I SET (prompt_per_million, completion_per_million, '
                                  'cached_prompt_per_million, cache_write_per_million) '
                                  '= ($1.prompt_per_million, $1.completion_per_million, '
                                  '$1.cached_prompt_per_million, $1.cache_write_per_million) '
                                  'WHERE model OPERATOR(pg_catalog.=) $1.model',
                                  TG_TABLE_SCHEMA, TG_TABLE_NAME) USING NEW;
    ELSIF pg_catalog.regexp_replace(TG_TABLE_NAME, '_[0-9]+$', '') OPERATOR(pg_catalog.=) 'rollup_state' THEN
        EXECUTE pg_catalog.format('UPDATE %I.%I SET (watermark, last_pass, last_pass_folded, timezone, '
                                  'retained_from, last_error, last_error_at) '
                                  '= ($1.watermark, $1.last_pass, $1.last_pass_folded, $1.timezone, '
                                  '$1.retained_from, $1.last_error, $1.last_error_at) WHERE singleton',
                                  TG_TABLE_SCHEMA, TG_TABLE_NAME) USING NEW;
    ELSIF pg_catalog.regexp_replace(TG_TABLE_NAME, '_[0-9]+$', '') OPERATOR(pg_catalog.=) 'usage_customer' THEN
        -- Only the row of zeros that the customer's insert added (its
        -- first_seen is null): replacing it adds the new row to zeros.
        EXECUTE pg_catalog.format('UPDATE %I.%I SET (requests, errors, prompt_tokens, completion_tokens, '
                                  'cost, latency_sum, latency_count, ttft_sum, ttft_count, first_seen, '
                                  'last_seen, active_days, cached_tokens) '
                                  '= ($1.requests, $1.errors, $1.prompt_tokens, $1.completion_tokens, '
                                  '$1.cost, $1.latency_sum, $1.latency_count, $1.ttft_sum, $1.ttft_count, '
                                  '$1.first_seen, $1.last_seen, $1.active_days, $1.cached_tokens) '
                                  'WHERE customer_identifier OPERATOR(pg_catalog.=) $1.customer_identifier '
                                  'AND first_seen IS NULL',
                                  TG_TABLE_SCHEMA, TG_TABLE_NAME) USING NEW;
    ELSE
        RAISE EXCEPTION 'replace_on_insert is not meant for table %', TG_TABLE_NAME;
    END IF;
    GET DIAGNOSTICS replaced = ROW_COUNT;
    IF replaced > 0 THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION analytics.replace_on_insert() IS
    'Trigger: an INSERT of an existing model price, of the rollup state, or (in record mode) of a customer''s usage_customer row of zeros replaces the row (so dumps restore).';

CREATE TRIGGER replace_on_insert BEFORE INSERT ON analytics.model_prices
    FOR EACH ROW EXECUTE FUNCTION analytics.replace_on_insert();
CREATE TRIGGER replace_on_insert BEFORE INSERT ON analytics.rollup_state
    FOR EACH ROW EXECUTE FUNCTION analytics.replace_on_insert();

-- Restoring a dump (in record mode, docs/budgets.md): the customers come
-- first and their insert adds each one a usage_customer row of zeros
-- (40_rollup.sql), which the dumped row then replaces.
CREATE TRIGGER replace_on_insert BEFORE INSERT ON analytics.usage_customer
    FOR EACH ROW WHEN (pg_catalog.current_setting('analytics.budget_enforcement') OPERATOR(pg_catalog.=) 'record')
    EXECUTE FUNCTION analytics.replace_on_insert();
