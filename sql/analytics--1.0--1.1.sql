-- analytics 1.0 -> 1.1.  Everything here is also in the pieces under
-- sql/install/, which build the 1.1 install script; test/upgrade.sh proves
-- that the two give the same schema.
\echo Use "ALTER EXTENSION analytics UPDATE TO '1.1'" to load this file. \quit
