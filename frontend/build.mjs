// `make assets`: builds the dashboard's files from src/ and html/ with esbuild, reproducibly (the
// versions are pinned in package-lock.json; the output has no timestamps or absolute paths).
//
//   ../cymetica_mcp/assets/page.html page.js page.css icon.svg   the page at / (served as files: strict CSP)
//   ../cymetica_mcp/assets/view.html                              the MCP App view: one self-contained document
//   ../cymetica_mcp/assets/THIRD_PARTY_LICENSES.txt               licences of the npm code bundled into view.html
//   ../tests/browser/host.html                                    the test host page (AppBridge), not shipped

import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const assets = join(here, "..", "cymetica_mcp", "assets");
const browserTests = join(here, "..", "tests", "browser");
mkdirSync(assets, { recursive: true });

// zod (inside the MCP SDK that ext-apps uses) re-exports its ~50 message locales as a namespace, which
// no bundler can drop; nothing here selects a locale but English (zod's default), so the others are left
// out: the view is half the size.
const englishOnly = {
  name: "zod-english-only",
  setup(build) {
    build.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, () => ({
      contents: 'export { default as en } from "./en.js";',
      loader: "js",
    }));
  },
};

const common = {
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  platform: "browser",
  legalComments: "none",
  charset: "utf8",
  write: false,
  metafile: true,
  logLevel: "warning",
  plugins: [englishOnly],
};

async function bundle(entry) {
  const result = await esbuild.build({ ...common, entryPoints: [join(here, "src", entry)] });
  return { code: result.outputFiles[0].text, inputs: Object.keys(result.metafile.inputs) };
}

async function css() {
  const result = await esbuild.build({ ...common, bundle: false, metafile: false, entryPoints: [join(here, "src", "dashboard.css")], loader: { ".css": "css" } });
  return result.outputFiles[0].text;
}

/** Text safe inside <script> or <style>: no closing tag can end the element early. */
function inline(text, tag) {
  return text.replace(new RegExp(`</(${tag})`, "gi"), "<\\/$1");
}

function template(name, replacements) {
  let html = readFileSync(join(here, "html", name), "utf8");
  for (const [marker, value] of Object.entries(replacements)) {
    if (!html.includes(marker)) throw new Error(`${name} has no ${marker}`);
    html = html.split(marker).join(value);
  }
  return html;
}

function licences(inputs) {
  const packages = new Map();
  for (const input of inputs) {
    const match = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
    if (match) packages.set(match[1], join(here, "node_modules", match[1]));
  }
  const parts = ["Third-party code bundled into view.html (built by `make assets` from frontend/package-lock.json).", ""];
  for (const [name, folder] of [...packages].sort(([a], [b]) => a.localeCompare(b))) {
    const meta = JSON.parse(readFileSync(join(folder, "package.json"), "utf8"));
    let text = "";
    for (const file of ["LICENSE", "LICENSE.md", "LICENSE.txt", "license"]) {
      try {
        text = readFileSync(join(folder, file), "utf8").trim();
        break;
      } catch {}
    }
    parts.push("=".repeat(72), `${name} ${meta.version} (${meta.license})`, "", text || `License: ${meta.license}`, "");
  }
  return parts.join("\n");
}

const style = await css();
const page = await bundle("page.ts");
const view = await bundle("view.ts");
const host = await bundle("host.ts");

writeFileSync(join(assets, "page.html"), readFileSync(join(here, "html", "page.html"), "utf8"));
writeFileSync(join(assets, "page.js"), page.code);
writeFileSync(join(assets, "page.css"), style);
writeFileSync(join(assets, "icon.svg"), readFileSync(join(here, "src", "icon.svg"), "utf8"));
writeFileSync(join(assets, "view.html"), template("view.html", { "/*CSS*/": inline(style, "style"), "/*VIEW_JS*/": inline(view.code, "script") }));
writeFileSync(join(assets, "THIRD_PARTY_LICENSES.txt"), licences(view.inputs));
mkdirSync(browserTests, { recursive: true });
writeFileSync(join(browserTests, "host.html"), template("host.html", { "/*HOST_JS*/": inline(host.code, "script") }));
for (const [name, text] of [["page.js", page.code], ["page.css", style], ["view.html", view.code]]) {
  console.log(`${name.padEnd(10)} ${(Buffer.byteLength(text) / 1024).toFixed(1)} KiB`);
}
