// Observable Framework configuration of the analytics dashboard
// (SPEC section 16).  Everything the site loads is built into dist/: no
// Google font (globalStylesheets), libraries imported from node_modules by
// name (never npm:, which Framework fetches from a CDN).
import {read, slug, topCustomers} from "./lib/db.js";

export default {
  root: "src",
  title: "analytics",
  pages: [
    {name: "Overview", path: "/"},
    {name: "Users", path: "/users"}
  ],
  // One page per customer of the top 100 by cost (all time): a static site
  // cannot hold a page for each of a million customers.
  async *dynamicPaths() {
    const customers = await read(topCustomers);
    for (const c of customers) yield `/customers/${slug(c.customer_identifier)}`;
  },
  style: "style.css",
  globalStylesheets: [],
  // No favicon request either.
  head: '<link rel="icon" href="data:,">',
  footer: "analytics: per-customer LLM usage, read from the views as analytics_reader.",
  toc: false,
  search: false
};
