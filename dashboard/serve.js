// Serves the built dashboard (dist/) over HTTP the way Framework's pages
// link to each other: /users is users.html, /customers/x is
// customers/x.html, a directory is its index.html.  Static files only.
//
//   node serve.js [--port N] [--host H]      prints the URL, serves until killed
import {createReadStream, statSync} from "node:fs";
import {createServer} from "node:http";
import {extname, join, normalize} from "node:path";
import {fileURLToPath} from "node:url";
import {parseArgs} from "node:util";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".css": "text/css",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".wasm": "application/wasm"
};

function file(path) {
  try {
    return statSync(path).isFile() ? path : null;
  } catch {
    return null;
  }
}

// serve(dist, port, host): an HTTP server of dist, listening; resolves to it.
export function serve(dist, port = 0, host = "127.0.0.1") {
  const server = createServer((req, res) => {
    let path;
    try {
      path = normalize(decodeURIComponent(new URL(req.url, "http://localhost").pathname));
    } catch {
      path = null;
    }
    const found =
      path && !path.includes("\0") && !path.split("/").includes("..")
        ? file(join(dist, path)) ?? file(join(dist, path + ".html")) ?? file(join(dist, path, "index.html"))
        : null;
    if (!found) {
      res.writeHead(404, {"content-type": "text/plain"}).end("not found\n");
      return;
    }
    res.writeHead(200, {"content-type": TYPES[extname(found)] ?? "application/octet-stream"});
    createReadStream(found).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const {values} = parseArgs({options: {port: {type: "string", default: "3000"}, host: {type: "string", default: "127.0.0.1"}}});
  const dist = join(fileURLToPath(new URL(".", import.meta.url)), "dist");
  const server = await serve(dist, Number(values.port), values.host);
  const {address, port} = server.address();
  console.log(`The dashboard: http://${address.includes(":") ? `[${address}]` : address}:${port}/`);
}
