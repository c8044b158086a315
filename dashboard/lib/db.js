// The dashboard's one way into the database, shared by the data loaders and
// the config (which lists the customer pages).  The connection comes from
// the usual libpq variables (PGHOST, PGPORT, PGDATABASE, PGUSER,
// PGPASSWORD); the role must read through analytics_reader and nothing more
// (checked on connect).  Each loader is a process of its own: it connects,
// runs its queries in one read-only transaction (one snapshot, so the
// figures of a page agree with each other) and writes JSON on stdout.

import {createHash} from "node:crypto";
import pg from "pg";

// node-postgres returns bigint and numeric as strings (they may not fit a
// JavaScript number) and turns a date into a Date at local midnight (a day
// early east of UTC).  The views' bigint columns are counts and ids, their
// numeric columns USD amounts shown rounded: numbers here, a bigint beyond
// 2^53 being an error rather than a silently wrong figure.  A date stays
// its ISO text (YYYY-MM-DD, a calendar day of the rollup time zone), and a
// timestamptz becomes a Date, which JSON writes in ISO form (UTC).
const INT8 = 20;
const NUMERIC = 1700;
const DATE = 1082;

function parseCount(text) {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new RangeError(`bigint ${text} does not fit a JavaScript number exactly`);
  return n;
}

const types = {
  getTypeParser(oid, format) {
    if (format === "text") {
      if (oid === INT8) return parseCount;
      if (oid === NUMERIC) return Number;
      if (oid === DATE) return (text) => text;
    }
    return pg.types.getTypeParser(oid, format);
  }
};

// read(fn): connects, checks the role, sets the session time zone to the
// rollup time zone (so that now()::date is the current day of the views),
// calls fn(query) in a read-only REPEATABLE READ transaction and returns
// its result.  query(sql, params) returns the rows.
export async function read(fn) {
  const client = new pg.Client({application_name: "analytics-dashboard", types});
  await client.connect();
  try {
    const query = async (sql, params = []) => (await client.query(sql, params)).rows;
    const [role] = await query(`
      SELECT current_user AS name,
             pg_has_role(current_user, 'analytics_reader', 'USAGE') AS reads,
             (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) AS superuser,
             has_table_privilege('analytics.logs', 'INSERT') OR has_table_privilege('analytics.customers', 'UPDATE')
                 OR has_column_privilege('analytics.logs', 'prompt_messages', 'SELECT') AS more`);
    if (!role.reads || role.superuser || role.more) {
      throw new Error(
        `the dashboard reads as a role with analytics_reader and nothing more; ${role.name} ` +
          (role.reads ? "may write or read message bodies" : "is not a member of analytics_reader") +
          ` (create one: CREATE ROLE dashboard LOGIN IN ROLE analytics_reader, and set PGUSER)`
      );
    }
    await query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const [{timezone}] = await query("SELECT timezone FROM analytics.status");
    await query("SELECT set_config('TimeZone', $1, true)", [timezone]);
    const result = await fn(query);
    await query("COMMIT");
    return result;
  } finally {
    await client.end();
  }
}

// The customers that get a page: the top 100 by cost over all time, in
// rank order.
export const CUSTOMER_PAGES = 100;
export function topCustomers(query) {
  return query(
    `SELECT rank, customer_identifier, name, email, requests, total_tokens, cost
       FROM analytics.top_users(NULL, NULL, 'cost', $1)`,
    [CUSTOMER_PAGES]
  );
}

// customer_identifier -> path segment of its page, for the customers that
// have one.
export async function customerPages(query) {
  return new Map((await topCustomers(query)).map((c) => [c.customer_identifier, slug(c.customer_identifier)]));
}

// The path segment of a customer's page: the identifier itself when it is
// a short plain word, else "~" and a hash of it (an identifier may hold any
// character and 255 of them).
export function slug(customer) {
  if (/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/.test(customer)) return customer;
  return "~" + createHash("sha256").update(customer).digest("hex").slice(0, 32);
}

// writeJson(value): a loader's output.
export function writeJson(value) {
  process.stdout.write(JSON.stringify(value));
}
