// The browser page served at `/` by `cymetica-mcp serve`: asks for an API key once (kept in this tab's
// sessionStorage only), exchanges it for a JWT, follows /ws/analytics with it, and shows the dashboard.
//
//   live          a socket is open and has said `connected`
//   reconnecting  the socket dropped: try again after 0.5, 1, 2, 4 ... 15 s (with jitter)
//   signed out    the key was refused (bad, revoked, lacks the read scope) or the user signed out
//
// The JWT is replaced before it expires (a new socket opens, then the old one closes). A 4401 close
// (the server refuses the token) gets one more exchange of the key; if that is refused, the page
// signs out and says why. The filter and period live in the URL (?filter=&period=).

import { Controls, type Choice } from "./controls";
import { DashboardView } from "./render";
import { isFilter, isPeriod, type Dashboard } from "./types";

const KEY_ITEM = "cymetica.apiKey";
const TOKEN_PATH = "/api/v1/auth/token";
const WS_PATH = "/ws/analytics";
const MAX_BACKOFF_MS = 15_000;
const UNAUTHORIZED = 4401;
const FORBIDDEN = 4403;

type State = "connecting" | "live" | "reconnecting" | "signed-out";
type Exchange = { ok: true; token: string; expiresIn: number } | { ok: false; status: number; message: string };

function $(id: string): HTMLElement {
  const node = document.getElementById(id);
  if (node === null) throw new Error(`the page has no #${id}`);
  return node;
}

function choiceFromUrl(): Choice {
  const query = new URLSearchParams(location.search);
  const filter = query.get("filter");
  const period = query.get("period");
  return { filter: isFilter(filter) ? filter : "all", period: isPeriod(period) ? period : "24h" };
}

async function exchange(key: string): Promise<Exchange> {
  let response: Response;
  try {
    response = await fetch(TOKEN_PATH, { method: "POST", headers: { Authorization: `Bearer ${key}` }, cache: "no-store", credentials: "omit" });
  } catch {
    return { ok: false, status: 0, message: "the server cannot be reached" };
  }
  const body: unknown = await response.json().catch(() => null);
  if (response.ok && typeof body === "object" && body !== null && "access_token" in body) {
    const { access_token, expires_in } = body as { access_token: string; expires_in: number };
    return { ok: true, token: access_token, expiresIn: expires_in };
  }
  const error = (body as { error?: { message?: string } } | null)?.error?.message;
  return { ok: false, status: response.status, message: error ?? `the server answered HTTP ${response.status}` };
}

/** Whether a refused exchange means the key itself is no good (sign out) rather than a passing fault. */
function refused(result: Exchange): boolean {
  return !result.ok && (result.status === 401 || result.status === 403);
}

class Page {
  private readonly view = new DashboardView($("dashboard"));
  private readonly controls: Controls;
  private choice: Choice = choiceFromUrl();
  private key: string | null = sessionStorage.getItem(KEY_ITEM);
  private socket: WebSocket | null = null;
  private retiring: WebSocket | null = null;
  private token: { value: string; expiresAt: number } | null = null;
  private attempts = 0;
  private retriedAfter4401 = false;
  private reconnectTimer: number | undefined;
  private refreshTimer: number | undefined;

  constructor() {
    this.controls = new Controls(this.choice, (choice) => this.choose(choice));
    $("controls").append(this.controls.element);
    ($("sign-in-form") as HTMLFormElement).addEventListener("submit", (event) => {
      event.preventDefault();
      void this.signIn();
    });
    $("sign-out").addEventListener("click", () => this.signOut("You signed out."));
    window.addEventListener("popstate", () => this.choose(choiceFromUrl(), false));
    if (this.key) void this.start(this.key);
    else this.showSignIn("");
  }

  private setState(state: State, text?: string): void {
    const status = $("status");
    status.dataset.state = state;
    const words: Record<State, string> = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", "signed-out": "Signed out" };
    $("status-text").textContent = text ?? words[state];
  }

  private showSignIn(message: string): void {
    this.setState("signed-out");
    $("board").hidden = true;
    $("sign-out").hidden = true;
    $("sign-in").hidden = false;
    $("sign-in-error").textContent = message;
    ($("api-key") as HTMLInputElement).focus();
  }

  private async signIn(): Promise<void> {
    const input = $("api-key") as HTMLInputElement;
    const key = input.value.trim();
    if (!key) {
      $("sign-in-error").textContent = "Enter an API key (cymetica-mcp keys create --name NAME prints one).";
      return;
    }
    $("sign-in-error").textContent = "";
    this.setState("connecting");
    const result = await exchange(key);
    if (!result.ok) {
      this.setState("signed-out");
      $("sign-in-error").textContent = `Sign-in refused: ${result.message}`;
      return;
    }
    input.value = "";
    this.key = key;
    sessionStorage.setItem(KEY_ITEM, key);
    this.useToken(result);
    this.enterBoard();
    this.connect();
  }

  private async start(key: string): Promise<void> {
    this.enterBoard();
    this.setState("connecting");
    const result = await exchange(key);
    if (!result.ok) {
      if (refused(result)) this.signOut(`Signed out: ${result.message}`);
      else this.scheduleReconnect();
      return;
    }
    this.useToken(result);
    this.connect();
  }

  private enterBoard(): void {
    $("sign-in").hidden = true;
    $("board").hidden = false;
    $("sign-out").hidden = false;
  }

  private useToken(result: Exchange & { ok: true }): void {
    this.token = { value: result.token, expiresAt: Date.now() + result.expiresIn * 1000 };
    window.clearTimeout(this.refreshTimer);
    // Refresh a minute before expiry (a quarter of the lifetime before, for short-lived tokens).
    const lead = Math.min(60, result.expiresIn / 4);
    this.refreshTimer = window.setTimeout(() => void this.refresh(), Math.max(1, result.expiresIn - lead) * 1000);
  }

  /** Before the JWT expires: a new token, a new socket; the old socket closes once the new one is live. */
  private async refresh(): Promise<void> {
    if (!this.key || this.socket === null) return;
    const result = await exchange(this.key);
    if (!result.ok) {
      if (refused(result)) this.signOut(`Signed out: ${result.message}`);
      else this.refreshTimer = window.setTimeout(() => void this.refresh(), 5_000);
      return;
    }
    this.useToken(result);
    this.retiring = this.socket;
    this.connect();
  }

  private connect(): void {
    if (this.token === null) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}${WS_PATH}?token=${encodeURIComponent(this.token.value)}`);
    this.socket = socket;
    if (this.retiring === null) this.setState(this.attempts === 0 ? "connecting" : "reconnecting");
    socket.addEventListener("message", (event) => this.receive(socket, event));
    socket.addEventListener("close", (event) => this.closed(socket, event));
  }

  private receive(socket: WebSocket, event: MessageEvent): void {
    if (socket !== this.socket || typeof event.data !== "string") return;
    let message: { type?: string; data?: Dashboard; data_version?: number; error?: { message?: string } };
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    switch (message.type) {
      case "connected":
        this.attempts = 0;
        this.retriedAfter4401 = false;
        this.setState("live");
        if (this.retiring !== null) {
          this.retiring.close(1000, "replaced by a socket with a fresh token");
          this.retiring = null;
        }
        this.send({ type: "set_preferences", ...this.choice });
        break;
      case "analytics_update": {
        const data = message.data;
        if (data && data.metrics.filter === this.choice.filter && data.metrics.period === this.choice.period) {
          this.view.show(data, { dataVersion: message.data_version });
          this.controls.enable(true);
        }
        break;
      }
      case "error":
        this.notice(message.error?.message ?? "the server refused a message");
        break;
    }
  }

  private closed(socket: WebSocket, event: CloseEvent): void {
    if (socket === this.retiring) {
      this.retiring = null;
      return;
    }
    if (socket !== this.socket || this.key === null) return;
    this.socket = null;
    if (event.code === UNAUTHORIZED) void this.reauthorize(event.reason);
    else if (event.code === FORBIDDEN) this.signOut(`Signed out: ${event.reason}`);
    else this.scheduleReconnect();
  }

  /** The server refused the token (4401): exchange the key once more; sign out if that is refused. */
  private async reauthorize(reason: string): Promise<void> {
    if (this.key === null) return;
    if (this.retriedAfter4401) {
      this.signOut(`Signed out: ${reason}`);
      return;
    }
    this.retriedAfter4401 = true;
    const result = await exchange(this.key);
    if (result.ok) {
      this.useToken(result);
      this.connect();
    } else if (refused(result)) this.signOut(`Signed out: ${result.message}`);
    else this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    this.setState("reconnecting");
    window.clearTimeout(this.reconnectTimer);
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempts) * (0.75 + Math.random() * 0.5);
    this.attempts += 1;
    this.reconnectTimer = window.setTimeout(() => void this.reconnect(), delay);
  }

  private async reconnect(): Promise<void> {
    if (this.key === null) return;
    if (this.token === null || this.token.expiresAt - Date.now() < 30_000) {
      const result = await exchange(this.key);
      if (!result.ok) {
        if (refused(result)) this.signOut(`Signed out: ${result.message}`);
        else this.scheduleReconnect();
        return;
      }
      this.useToken(result);
    }
    this.connect();
  }

  private choose(choice: Choice, remember = true): void {
    this.choice = choice;
    this.controls.set(choice);
    if (remember) {
      const url = new URL(location.href);
      url.searchParams.set("filter", choice.filter);
      url.searchParams.set("period", choice.period);
      history.pushState(null, "", url);
    }
    $("dashboard").setAttribute("aria-busy", "true");
    this.send({ type: "set_preferences", ...choice });
  }

  private send(message: object): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  private notice(text: string): void {
    const notice = $("notice");
    notice.textContent = text;
    notice.hidden = false;
    window.setTimeout(() => (notice.hidden = true), 8_000);
  }

  private signOut(message: string): void {
    this.key = null;
    this.token = null;
    sessionStorage.removeItem(KEY_ITEM);
    window.clearTimeout(this.reconnectTimer);
    window.clearTimeout(this.refreshTimer);
    const sockets = [this.socket, this.retiring];
    this.socket = this.retiring = null;
    for (const socket of sockets) socket?.close(1000, "signed out");
    this.view.message("Signed out.");
    this.showSignIn(message);
  }
}

new Page();
