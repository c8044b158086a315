-- Piece 70: scale-out on Citus (SPEC section 9, src/README.md "Scale-out").
--
-- analytics.distribute() shards every per-customer table by
-- customer_identifier, co-located with customers, and makes the price list
-- a reference table.  Afterwards the triggers run on the shards, on the
-- node that holds them (src/shards.c).

-- The ids of logs written on a Citus node: drawn by the insert trigger on
-- the node that holds the shard (src/shards.c), below the node's group id.
-- Not used on a single node, where the identity of analytics.logs draws
-- them.  CACHE 1, as the fold reads its last value.
CREATE SEQUENCE analytics.log_ids AS bigint MAXVALUE 281474976710655 CACHE 1;
COMMENT ON SEQUENCE analytics.log_ids IS
    'Ids of logs written on this Citus node (the node''s group id is added above bit 48); unused on a single node.';
SELECT pg_catalog.pg_extension_config_dump('analytics.log_ids', '');

-- On a Citus cluster: the time zone and retention boundary every node
-- folds with (a reference table: a copy on every node, nodes added later
-- included).  Written by distribute(), set_timezone() and purge_logs()
-- through the coordinator; a node copies it into its own rollup_state
-- before it takes over its first shard.  Empty on a single node.
CREATE TABLE analytics.rollup_settings (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT one_row CHECK (singleton),
    timezone text NOT NULL,
    retained_from timestamptz
);
COMMENT ON TABLE analytics.rollup_settings IS 'On a Citus cluster: the rollup time zone and retention boundary of every node (one row; a reference table). Empty on a single node.';
COMMENT ON COLUMN analytics.rollup_settings.singleton IS 'Always true: the table has at most one row.';
COMMENT ON COLUMN analytics.rollup_settings.timezone IS 'The rollup time zone of the cluster (analytics.set_timezone).';
COMMENT ON COLUMN analytics.rollup_settings.retained_from IS 'The retention boundary of the cluster (analytics.purge_logs); see rollup_state.retained_from.';
SELECT pg_catalog.pg_extension_config_dump('analytics.rollup_settings', '');

-- On a Citus node (analytics.distribute()): the logs shards this node's
-- fold has taken over (rollup.c, rollup_take_over).  A shard that arrives
-- (distribute() itself, or a shard move) holds logs drawn on another node,
-- whose fold state stayed there: the first pass that sees it rebuilds its
-- rollups from its raw logs, then lists it here.  Node-local and derived:
-- not dumped (a restored node rebuilds each shard once).
CREATE TABLE analytics.rollup_node_shards (
    shardid bigint PRIMARY KEY,
    relid oid NOT NULL,
    taken_over timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE analytics.rollup_node_shards IS 'On a Citus node: the logs shards whose rollups this node''s fold keeps (rebuilt from their raw logs when each arrived). Empty on a single node.';
COMMENT ON COLUMN analytics.rollup_node_shards.shardid IS 'Citus shard id of a logs shard placed on this node.';
COMMENT ON COLUMN analytics.rollup_node_shards.relid IS 'The shard''s relation when taken over: a shard that left and came back is a new relation, taken over again.';
COMMENT ON COLUMN analytics.rollup_node_shards.taken_over IS 'When this node rebuilt the shard''s rollups and began folding it.';

-- Run a statement on every worker node (each in a transaction of its
-- own); raise the first failure.
CREATE FUNCTION analytics._on_workers(command text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, analytics AS $$
DECLARE
    r record;
BEGIN
    -- The node's own objects: Citus would refuse the DDL on a worker.
    FOR r IN SELECT * FROM pg_catalog.run_command_on_workers(
                 'SET citus.enable_ddl_propagation TO off; ' OPERATOR(pg_catalog.||) command) LOOP
        IF NOT r.success THEN
            RAISE EXCEPTION 'analytics.distribute() failed on node %:%', r.nodename, r.nodeport
                USING DETAIL = r.result;
        END IF;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION analytics._on_workers(text) IS
    'Internal: runs a statement on every Citus worker node, raising the first failure (distribute()).';

CREATE FUNCTION analytics.distribute(shard_count integer DEFAULT 32) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, analytics AS $$
DECLARE
    t text;
    view text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'citus') THEN
        RAISE EXCEPTION 'analytics.distribute() needs Citus'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'The citus extension is not installed in this database.',
                  HINT = 'Preload citus before analytics (shared_preload_libraries = ''citus,analytics''), CREATE EXTENSION citus, add the worker nodes, then call analytics.distribute() on the coordinator.';
    END IF;
    IF shard_count IS NULL OR shard_count OPERATOR(pg_catalog.<) 1
       OR shard_count OPERATOR(pg_catalog.>) 1024 THEN
        PERFORM analytics._argument_error('shard_count', shard_count::text, 'an integer from 1 to 1024');
    END IF;
    IF NOT pg_catalog.citus_is_coordinator() THEN
        RAISE EXCEPTION 'analytics.distribute() runs on the coordinator'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Connect to the coordinator of the Citus cluster.';
    END IF;
    -- The triggers of the extension must run on the shards.
    PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);

    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid OPERATOR(pg_catalog.=) 'analytics.logs'::pg_catalog.regclass) THEN
        -- Fold every log recorded so far, before any table is distributed
        -- (the single-node fold reads customers with the logs, which
        -- Citus cannot plan once one of them is distributed), so that the
        -- rollups copied with the logs count them all (each node's first
        -- pass then rebuilds its shards' rollups from them, rollup.c).  No
        -- writer may add one until the logs are distributed.
        LOCK TABLE analytics.logs IN EXCLUSIVE MODE;
        PERFORM analytics.rollup_now();
        -- With every writer gone, every gap is settled: its logs that
        -- committed were folded just now.
        DELETE FROM analytics.rollup_gaps;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid OPERATOR(pg_catalog.=) 'analytics.model_prices'::pg_catalog.regclass) THEN
        PERFORM pg_catalog.create_reference_table('analytics.model_prices');
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid OPERATOR(pg_catalog.=) 'analytics.customers'::pg_catalog.regclass) THEN
        -- The customers already there have their usage_customer row (and
        -- their budget events): Citus copies them with the insert triggers
        -- set aside.
        ALTER TABLE analytics.customers DISABLE TRIGGER usage_customer_created;
        ALTER TABLE analytics.customers DISABLE TRIGGER budget_customer_created_blocked;
        PERFORM pg_catalog.create_distributed_table('analytics.customers', 'customer_identifier',
                                                    shard_count => shard_count, colocate_with => 'none');
        ALTER TABLE analytics.customers ENABLE TRIGGER usage_customer_created;
        ALTER TABLE analytics.customers ENABLE TRIGGER budget_customer_created_blocked;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid OPERATOR(pg_catalog.=) 'analytics.logs'::pg_catalog.regclass) THEN
        -- Citus needs the distribution column in every unique key; the
        -- fold reads logs by id.
        -- Citus routes no NULL: logs without a customer go under ''.
        ALTER TABLE analytics.logs DISABLE TRIGGER logs_guard_update;
        UPDATE analytics.logs SET customer_identifier = ''
         WHERE customer_identifier IS NULL;
        ALTER TABLE analytics.logs ENABLE TRIGGER logs_guard_update;
        ALTER TABLE analytics.logs DROP CONSTRAINT logs_pkey;
        ALTER TABLE analytics.logs ADD CONSTRAINT logs_pkey PRIMARY KEY (customer_identifier, id);
        CREATE INDEX logs_id ON analytics.logs (id);
        -- Citus routes no NULL: a log without a customer is stored under
        -- '' (src/shards.c); a COPY that leaves the column out gets it too.
        ALTER TABLE analytics.logs ALTER COLUMN customer_identifier SET DEFAULT '';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid OPERATOR(pg_catalog.=) 'analytics.rollup_set_aside'::pg_catalog.regclass) THEN
        ALTER TABLE analytics.rollup_set_aside DROP CONSTRAINT rollup_set_aside_pkey;
        ALTER TABLE analytics.rollup_set_aside
            ADD CONSTRAINT rollup_set_aside_pkey PRIMARY KEY (customer_identifier, log_id);
    END IF;
    -- Every node folds with the time zone and retention boundary of this
    -- one: a node takes them from this reference table before it takes
    -- over its first shard (rollup.c).
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid OPERATOR(pg_catalog.=) 'analytics.rollup_settings'::pg_catalog.regclass) THEN
        INSERT INTO analytics.rollup_settings (timezone, retained_from)
        SELECT s.timezone, s.retained_from FROM analytics.rollup_state s;
        PERFORM pg_catalog.create_reference_table('analytics.rollup_settings');
    END IF;
    FOREACH t IN ARRAY ARRAY['logs', 'budget_counters', 'usage_daily', 'usage_customer_day',
                             'usage_customer', 'rollup_set_aside', 'admissions',
                             'budget_events'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                        WHERE logicalrelid OPERATOR(pg_catalog.=) ('analytics.' OPERATOR(pg_catalog.||) t)::pg_catalog.regclass) THEN
            IF t OPERATOR(pg_catalog.=) 'logs' THEN
                -- The logs already recorded were checked, priced and
                -- budgeted when they came, and keep their ids: Citus copies
                -- them into the shards with the insert trigger set aside
                -- (they were folded first, above).
                ALTER TABLE analytics.logs DISABLE TRIGGER logs_before_insert;
            END IF;
            PERFORM pg_catalog.create_distributed_table('analytics.' OPERATOR(pg_catalog.||) t,
                                                        'customer_identifier',
                                                        colocate_with => 'analytics.customers');
            IF t OPERATOR(pg_catalog.=) 'logs' THEN
                ALTER TABLE analytics.logs ENABLE TRIGGER logs_before_insert;
            END IF;
        END IF;
    END LOOP;

    -- The views: usage_day is node-local and not kept on a cluster, so the
    -- per-day totals are read from usage_customer_day (41_rollup_pending.sql),
    -- on the coordinator and on every worker (a query may enter anywhere).
    view := $view$
    CREATE OR REPLACE VIEW analytics._usage_day AS
    SELECT x.customer_identifier, x.day, 1::pg_catalog.int8 AS active_users,
           -- rollup columns: list per_day x last
           x.requests,
           x.errors,
           x.prompt_tokens,
           x.completion_tokens,
           x.cost
           -- end rollup columns
      FROM analytics.usage_customer_day x
    $view$;
    EXECUTE view;
    PERFORM analytics._on_workers(view);
    -- Nor are the gap counters usage_day_gaps: active_users counts weeks
    -- and months over usage_customer_day (50_views.sql).
    view := $view$
    CREATE OR REPLACE VIEW analytics._day_gaps_kept AS SELECT false AS kept
    $view$;
    EXECUTE view;
    PERFORM analytics._on_workers(view);
    -- analytics.users and analytics.cost_by_user in the shape Citus pushes
    -- down (50_views.sql).
    view := $view$
    CREATE OR REPLACE VIEW analytics.users AS SELECT * FROM analytics._users_on_cluster
    $view$;
    EXECUTE view;
    PERFORM analytics._on_workers(view);
    view := $view$
    CREATE OR REPLACE VIEW analytics.cost_by_user AS SELECT * FROM analytics._cost_by_user_on_cluster
    $view$;
    EXECUTE view;
    PERFORM analytics._on_workers(view);
    DELETE FROM analytics.usage_day_gaps;
END;
$$;
COMMENT ON FUNCTION analytics.distribute(integer) IS
    'Shards the per-customer tables by customer_identifier on a Citus cluster (co-located with customers) and makes model_prices a reference table; idempotent; on the coordinator.';
