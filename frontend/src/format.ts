// How figures are written: the same rules for every host, and for the tests that read them back.

import type { MetricCard, Period } from "./types";

const DECIMALS: Record<MetricCard["suffix"], number> = { "": 0, USDC: 2, "%": 1 };

const formats = new Map<number, Intl.NumberFormat>();

/** `value` with a thousands separator and `decimals` digits: 116446.31 -> "116,446.31". */
export function number(value: number, decimals: number): string {
  let format = formats.get(decimals);
  if (format === undefined) {
    format = new Intl.NumberFormat("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
    formats.set(decimals, format);
  }
  return format.format(value === 0 ? 0 : value); // never "-0.0"
}

/** A card's value with its unit: "231", "116,446.31 USDC", "65.9%". */
export function cardValue(card: MetricCard): { number: string; suffix: string } {
  return { number: number(card.value, DECIMALS[card.suffix]), suffix: card.suffix };
}

export type Direction = "up" | "down" | "flat" | "none";

/** A change as an arrow, a signed percentage and words (never colour alone). */
export function change(value: number | null, period: Period): { direction: Direction; arrow: string; text: string; words: string } {
  if (value === null) {
    return { direction: "none", arrow: "", text: "n/a", words: `no change to show: the previous ${period} had nothing to compare with` };
  }
  const text = `${value > 0 ? "+" : ""}${number(value, 1)}%`; // the sign is text, not colour alone
  if (value > 0) return { direction: "up", arrow: "▲", text, words: `up ${number(value, 1)}% on the previous ${period}` };
  if (value < 0) return { direction: "down", arrow: "▼", text, words: `down ${number(-value, 1)}% on the previous ${period}` };
  return { direction: "flat", arrow: "■", text, words: `unchanged on the previous ${period}` };
}

/** A bucket start as the axis shows it: "Mar 19 15:00" (UTC). */
export function bucketLabel(timestamp: string, period: Period): string {
  const date = new Date(timestamp);
  const month = date.toLocaleString("en-US", { month: "short", timeZone: "UTC" });
  const day = date.getUTCDate();
  const time = `${String(date.getUTCHours()).padStart(2, "0")}:${String(date.getUTCMinutes()).padStart(2, "0")}`;
  return period === "30d" ? `${month} ${day}` : `${month} ${day} ${time}`;
}

/** A large amount in few characters for an axis: 11408.84 -> "11.4k". */
export function compact(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${number(value / 1e9, 1)}G`;
  if (abs >= 1e6) return `${number(value / 1e6, 1)}M`;
  if (abs >= 1e3) return `${number(value / 1e3, 1)}k`;
  return number(value, abs < 10 && value !== Math.round(value) ? 1 : 0);
}

export const POPULATION: Record<string, string> = { all: "all users", humans: "humans", agents: "agents" };
