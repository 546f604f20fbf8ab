// Small DOM and number helpers. Text always goes in as text nodes (reviews are user input).

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

export function pct(v, digits = 1) {
  return v === null || v === undefined ? "–" : `${(100 * v).toFixed(digits)}%`;
}

// A change in percentage points, signed, with the class that colours it.
export function points(v) {
  if (v === null || v === undefined) return { text: "new", cls: "" };
  const text = `${v > 0 ? "+" : ""}${(100 * v).toFixed(1)} pp`;
  return { text, cls: v > 0 ? "up" : v < 0 ? "down" : "" };
}

export function when(iso) {
  return new Date(iso).toISOString().replace("T", " ").slice(0, 16) + " UTC";
}
