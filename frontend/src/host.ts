// A minimal MCP Apps host for the tests and the screenshots (not shipped): it loads a view into a
// sandboxed iframe, as hosts do, and talks to it with the official host-side `AppBridge`. The test
// drives it through window.cymeticaHost and answers the view's tools/call through the exposed
// function window.forwardToolCall (a real MCP client session on the Python side).

import { AppBridge, PostMessageTransport, type McpUiHostContext } from "@modelcontextprotocol/ext-apps/app-bridge";

declare global {
  interface Window {
    forwardToolCall?: (params: unknown) => Promise<unknown>;
    cymeticaHost: {
      load(html: string, toolInput: Record<string, unknown>, toolResult: unknown, theme: "light" | "dark"): Promise<void>;
      calls: unknown[];
      initialized: boolean;
    };
  }
}

// What hosts put around a view that declares no CSP domains: nothing may be fetched from anywhere.
const VIEW_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; font-src data:; connect-src 'none'; frame-src 'none'; base-uri 'none'";

function withCsp(html: string): string {
  const meta = `<meta http-equiv="Content-Security-Policy" content="${VIEW_CSP}">`;
  return html.replace(/<head>/i, `<head>${meta}`);
}

window.cymeticaHost = {
  calls: [],
  initialized: false,
  async load(html, toolInput, toolResult, theme) {
    const frame = document.createElement("iframe");
    frame.setAttribute("sandbox", "allow-scripts");
    frame.setAttribute("title", "Cymetica dashboard (MCP App view)");
    frame.id = "view";
    document.getElementById("stage")?.replaceChildren(frame);
    if (frame.contentWindow === null) throw new Error("the view's iframe has no window");
    const context: McpUiHostContext = { theme, displayMode: "inline", platform: "web" };
    const bridge = new AppBridge(null, { name: "cymetica-test-host", version: "1.0.0" }, { serverTools: {}, logging: {} }, { hostContext: context });
    bridge.oncalltool = async (params) => {
      window.cymeticaHost.calls.push(params);
      if (!window.forwardToolCall) throw new Error("this host has no server to forward tools/call to");
      return (await window.forwardToolCall(params)) as Awaited<ReturnType<NonNullable<typeof bridge.oncalltool>>>;
    };
    bridge.onsizechange = ({ height }) => {
      if (height !== undefined) frame.style.height = `${Math.ceil(height)}px`;
    };
    const initialized = new Promise<void>((resolve) => {
      bridge.oninitialized = () => resolve();
    });
    // Listen first, then load: the view says ui/initialize as soon as its script runs. The iframe's
    // WindowProxy stays the same object when srcdoc replaces its document.
    await bridge.connect(new PostMessageTransport(frame.contentWindow, frame.contentWindow));
    frame.srcdoc = withCsp(html);
    await initialized;
    window.cymeticaHost.initialized = true;
    await bridge.sendToolInput({ arguments: toolInput });
    await bridge.sendToolResult(toolResult as Parameters<typeof bridge.sendToolResult>[0]);
  },
};
