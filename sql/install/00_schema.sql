-- analytics install script (the current version), assembled from sql/install/*.sql in name order.
-- Piece 00: the guard against running it by hand.
\echo Use "CREATE EXTENSION analytics" to load this file. \quit

CREATE SCHEMA analytics;
COMMENT ON SCHEMA analytics IS 'Per-user analytics and budgets for LLM applications.';
