// Formatting shared by the pages.  Days arrive as ISO text (YYYY-MM-DD,
// calendar days of the rollup time zone) and are shown as such: never
// through a local Date, which would move them a day east of UTC.

const integer = new Intl.NumberFormat("en-US", {maximumFractionDigits: 0});

export function count(n) {
  return n == null ? "–" : integer.format(n);
}

// USD with 4 decimals: LLM calls cost fractions of a cent.
export function usd(x) {
  return x == null ? "–" : "$" + x.toLocaleString("en-US", {minimumFractionDigits: 4, maximumFractionDigits: 4});
}

// A fraction from 0 to 1 as a percentage with one decimal.
export function percent(x) {
  return x == null ? "–" : (x * 100).toFixed(1) + "%";
}

export function seconds(x) {
  return x == null ? "–" : x.toFixed(2) + " s";
}

const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

// "Nov 30" from "2026-11-30".
export function shortDay(day) {
  return `${months[Number(day.slice(5, 7)) - 1]} ${Number(day.slice(8, 10))}`;
}

// A timestamp (ISO text from JSON) in UTC, to the second.
export function moment(iso) {
  return iso == null ? "–" : iso.slice(0, 19).replace("T", " ") + " UTC";
}

// A customer's label: the name (names need not be unique) and the identifier.
export function customerLabel(c) {
  return c.name ? `${c.name} (${c.customer_identifier})` : c.customer_identifier;
}

// A link to the customer's page, or the label alone when the customer has
// none (only the top 100 by cost do).  base: the path back to the root.
export function customerLink(c, base = "./") {
  if (!c.page) return document.createTextNode(customerLabel(c));
  const a = document.createElement("a");
  a.href = `${base}customers/${encodeURIComponent(c.page)}`;
  a.textContent = customerLabel(c);
  return a;
}
