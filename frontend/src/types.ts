// The dashboard object of the analytics contract (REST body, WebSocket `data`, MCP tool `data`).

export type Filter = "all" | "humans" | "agents";
export type Period = "24h" | "7d" | "30d";

export const FILTERS: readonly Filter[] = ["all", "humans", "agents"];
export const PERIODS: readonly Period[] = ["24h", "7d", "30d"];

export interface MetricCard {
  label: string;
  value: number;
  change: number | null;
  suffix: "" | "USDC" | "%";
}

export interface Metrics {
  active_users: MetricCard;
  trading_volume: MetricCard;
  retention_rate: MetricCard;
  avg_capital: MetricCard;
  avg_roi: MetricCard;
  filter: Filter;
  period: Period;
  timestamp: string;
}

export interface VolumePoint {
  timestamp: string;
  total_volume: number;
  bot_volume: number;
  human_volume: number;
  trade_count: number;
}

export interface ActivityPoint {
  timestamp: string;
  total_users: number;
  bot_users: number;
  human_users: number;
}

export interface RoiBucket {
  range: string;
  count: number;
}

export interface Dashboard {
  metrics: Metrics;
  volume_over_time: VolumePoint[];
  user_activity: ActivityPoint[];
  profitability_distribution: RoiBucket[];
}

export interface Span {
  start: string;
  end: string;
}

/** `meta` of the MCP tool's success envelope. */
export interface Meta {
  as_of: string;
  window: Span;
  previous_window: Span;
  bucket_seconds: number;
  buckets: number;
  data_version: number;
  computed_at: string;
  cached: boolean;
}

export const CARD_KEYS = ["active_users", "trading_volume", "retention_rate", "avg_capital", "avg_roi"] as const;

export function isFilter(value: unknown): value is Filter {
  return typeof value === "string" && (FILTERS as readonly string[]).includes(value);
}

export function isPeriod(value: unknown): value is Period {
  return typeof value === "string" && (PERIODS as readonly string[]).includes(value);
}
