// The filter and period switchers: two native radio groups (keyboard: Tab to a group, arrows to move),
// styled as segmented buttons.

import { el } from "./render";
import { FILTERS, PERIODS, type Filter, type Period } from "./types";

const FILTER_WORDS: Record<Filter, string> = { all: "All", humans: "Humans", agents: "Agents" };

export interface Choice {
  filter: Filter;
  period: Period;
}

export class Controls {
  readonly element: HTMLElement;
  private readonly inputs: HTMLInputElement[] = [];

  constructor(initial: Choice, onChange: (choice: Choice) => void) {
    const group = (legend: string, name: string, values: readonly string[], words: (v: string) => string, checked: string) => {
      const fieldset = el("fieldset", { class: "switch" }, el("legend", {}, legend));
      for (const value of values) {
        const input = el("input", { type: "radio", name, value, id: `${name}-${value}` });
        input.checked = value === checked;
        input.addEventListener("change", () => onChange(this.value()));
        this.inputs.push(input);
        fieldset.append(el("label", { for: `${name}-${value}` }, input, el("span", {}, words(value))));
      }
      return fieldset;
    };
    this.element = el(
      "form",
      { class: "controls", "aria-label": "Dashboard choice" },
      group("Population", "filter", FILTERS, (v) => FILTER_WORDS[v as Filter], initial.filter),
      group("Period", "period", PERIODS, (v) => v, initial.period),
    );
    this.element.addEventListener("submit", (event) => event.preventDefault());
  }

  value(): Choice {
    const pick = (name: string) => this.inputs.find((i) => i.name === name && i.checked)?.value;
    return { filter: (pick("filter") ?? "all") as Filter, period: (pick("period") ?? "24h") as Period };
  }

  set(choice: Choice): void {
    for (const input of this.inputs) input.checked = input.value === (input.name === "filter" ? choice.filter : choice.period);
  }

  enable(enabled: boolean): void {
    for (const input of this.inputs) input.disabled = !enabled;
  }
}
