-- Install, upgrade walk, and what CREATE/DROP EXTENSION create and remove.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS analytics CASCADE;
RESET client_min_messages;

-- The oldest version is the only one so far; every later version must be
-- reachable from it by ALTER EXTENSION ... UPDATE.
CREATE EXTENSION analytics VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'analytics';
SELECT count(*) AS update_paths_missing
  FROM pg_extension_update_paths('analytics')
 WHERE source = '1.0' AND target = (SELECT default_version FROM pg_available_extensions WHERE name = 'analytics')
   AND path IS NULL AND source <> target;
ALTER EXTENSION analytics UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'analytics';

-- Everything lives in schema analytics.
SELECT n.nspname, count(*) > 0 AS has_objects
  FROM pg_depend d JOIN pg_class c ON c.oid = d.objid AND d.classid = 'pg_class'::regclass
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'analytics')
 GROUP BY n.nspname;

-- Every table and view users see, and every column of them, has a comment.
SELECT c.relname, a.attname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE n.nspname = 'analytics' AND c.relkind IN ('r', 'v')
   AND col_description(c.oid, a.attnum) IS NULL
 ORDER BY 1, 2;
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'analytics' AND c.relkind IN ('r', 'v')
   AND obj_description(c.oid, 'pg_class') IS NULL;
SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'analytics' AND obj_description(p.oid, 'pg_proc') IS NULL;

-- The settings exist and the prefix is reserved.
SHOW analytics.budget_enforcement;
SET analytics.no_such_setting = 1;

-- DROP EXTENSION removes it all.
DROP EXTENSION analytics;
SELECT count(*) FROM pg_namespace WHERE nspname = 'analytics';
CREATE EXTENSION analytics;
