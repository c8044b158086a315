-- Piece 90: make pg_dump/pg_restore round trips work.
--
-- CREATE EXTENSION seeds model_prices and the rollup_state row, and a dump
-- holds those tables' rows as they were when dumped.  So that restoring the
-- dump neither fails on the seeded keys nor keeps stale seeded values, an
-- INSERT of a key that exists replaces that row.

CREATE FUNCTION analytics.replace_on_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, analytics AS $$
BEGIN
    IF TG_TABLE_NAME = 'model_prices' THEN
        UPDATE analytics.model_prices
           SET prompt_per_million = NEW.prompt_per_million,
               completion_per_million = NEW.completion_per_million
         WHERE model OPERATOR(pg_catalog.=) NEW.model;
    ELSIF TG_TABLE_NAME = 'rollup_state' THEN
        UPDATE analytics.rollup_state
           SET (watermark, last_pass, last_pass_folded, timezone, retained_from,
                last_error, last_error_at)
             = (NEW.watermark, NEW.last_pass, NEW.last_pass_folded, NEW.timezone, NEW.retained_from,
                NEW.last_error, NEW.last_error_at)
         WHERE singleton;
    ELSE
        RAISE EXCEPTION 'replace_on_insert is not meant for table %', TG_TABLE_NAME;
    END IF;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION analytics.replace_on_insert() IS
    'Trigger: an INSERT of an existing model price or of the rollup state replaces the row (so dumps restore).';

CREATE TRIGGER replace_on_insert BEFORE INSERT ON analytics.model_prices
    FOR EACH ROW EXECUTE FUNCTION analytics.replace_on_insert();
CREATE TRIGGER replace_on_insert BEFORE INSERT ON analytics.rollup_state
    FOR EACH ROW EXECUTE FUNCTION analytics.replace_on_insert();
