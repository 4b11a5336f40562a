// The MCP App view of `et_analytics_dashboard` (ui://cymetica/dashboard.html): the host hands it the
// tool's result; switching filter or period calls the tool again through the host. It talks to the host
// only through the official `App` class of @modelcontextprotocol/ext-apps (bundled into this document).

import { App, applyDocumentTheme, applyHostStyleVariables, type McpUiHostContext } from "@modelcontextprotocol/ext-apps";

import { Controls, type Choice } from "./controls";
import { DashboardView } from "./render";
import { isFilter, isPeriod, type Dashboard, type Meta } from "./types";

const TOOL = "et_analytics_dashboard";

interface CallResult {
  structuredContent?: Record<string, unknown>;
  content?: { type: string; text?: string }[];
  isError?: boolean;
}

function $(id: string): HTMLElement {
  const node = document.getElementById(id);
  if (node === null) throw new Error(`the view has no #${id}`);
  return node;
}

const view = new DashboardView($("dashboard"));
const app = new App({ name: "cymetica-dashboard", version: "0.1.0" }, {}, { autoResize: true });
let asOf: string | undefined;
let pending = 0;

const controls = new Controls({ filter: "all", period: "24h" }, (choice) => void switchTo(choice));
controls.enable(false);
$("controls").append(controls.element);

function status(text: string): void {
  $("status").textContent = text;
}

/** Show a tool result: the success envelope's figures, or its error message. */
function show(result: CallResult): void {
  const envelope = result.structuredContent as { success?: boolean; data?: Dashboard; meta?: Meta; error?: { code: string; message: string } } | undefined;
  if (envelope?.success === true && envelope.data && envelope.meta) {
    const m = envelope.data.metrics;
    controls.set({ filter: m.filter, period: m.period });
    view.show(envelope.data, { meta: envelope.meta, dataVersion: envelope.meta.data_version });
    status("");
    return;
  }
  const error = envelope?.error;
  const text = result.content?.find((c) => c.type === "text")?.text;
  view.message(error ? `${error.code}: ${error.message}` : (text ?? "The tool returned no dashboard."));
}

async function switchTo(choice: Choice): Promise<void> {
  const call = ++pending;
  status(`Loading ${choice.filter}, ${choice.period}…`);
  $("dashboard").setAttribute("aria-busy", "true");
  const args: Record<string, string> = { filter: choice.filter, period: choice.period };
  if (asOf !== undefined) args.as_of = asOf;
  try {
    const result = (await app.callServerTool({ name: TOOL, arguments: args })) as CallResult;
    if (call === pending) show(result);
  } catch (error) {
    if (call === pending) status(`The host could not call ${TOOL}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function theme(context: McpUiHostContext | undefined): void {
  if (context?.theme) applyDocumentTheme(context.theme);
  if (context?.styles?.variables) applyHostStyleVariables(context.styles.variables);
}

app.ontoolinput = (params) => {
  const args = params.arguments ?? {};
  // A pinned instant stays pinned when the user switches: the view shows the same moment.
  asOf = typeof args.as_of === "string" ? args.as_of : undefined;
  const filter = args.filter;
  const period = args.period;
  controls.set({ filter: isFilter(filter) ? filter : "all", period: isPeriod(period) ? period : "24h" });
};
app.ontoolresult = (result) => {
  controls.enable(true);
  show(result as CallResult);
};
app.onhostcontextchanged = (context) => theme(context);
app.onteardown = async () => ({});

app
  .connect()
  .then(() => {
    theme(app.getHostContext());
    status("Waiting for the tool's result…");
  })
  .catch((error: unknown) => status(`Could not connect to the host: ${error instanceof Error ? error.message : String(error)}`));
