// Building the page: elements are made with h() and text nodes, never by
// parsing HTML, so no value from the API can become markup or script.

/**
 * Makes an element: `h('button', { class: 'primary', onclick: f }, 'Save')`.
 * Attributes starting with `on` become listeners; `null`, `undefined` and
 * `false` attributes and children are skipped; strings and numbers become
 * text.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else if (name === 'dataset') {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(name, '');
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

/** Appends children (nested arrays flattened, empty ones skipped). */
export function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** Replaces the children of `element`. */
export function replace(element, ...children) {
  element.replaceChildren();
  return append(element, children);
}

/**
 * A table: `columns` are `{ label, cell: (row) => content, num: bool,
 * key: bool }` (numbers align right; neither numbers nor keys such as SKUs
 * wrap); `empty` is shown in place of the rows when there are none.
 */
export function table(columns, rows, { caption, empty = 'Nothing yet.', label } = {}) {
  if (rows.length === 0) return h('p', { class: 'muted' }, empty);
  return h('table', { 'aria-label': label ?? caption },
    caption ? h('caption', { class: 'muted small' }, caption) : null,
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : null, scope: 'col' }, c.label)))),
    h('tbody', {}, rows.map((row) => h('tr', {}, columns.map((c) => h('td', { class: c.num ? 'num' : c.key ? 'key' : null }, c.cell(row)))))),
  );
}

/** A box saying what went wrong, for screen readers too. */
export function errorBox(error) {
  const field = error?.field ? h('div', { class: 'small' }, 'Field: ', h('code', {}, error.field)) : null;
  return h('div', { class: 'error-box', role: 'alert' }, h('div', {}, error?.message ?? String(error)), field);
}

/** A box saying what went right. */
export function okBox(text) {
  return h('div', { class: 'ok-box', role: 'status' }, text);
}

/**
 * A button running `action` when clicked: disabled while it runs, and any
 * error it throws is handed to `onError`.
 */
export function actionButton(text, action, { kind, label, onError } = {}) {
  const button = h('button', { type: 'button', class: kind, 'aria-label': label });
  button.textContent = text;
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await action();
    } catch (error) {
      if (onError) onError(error);
      else throw error;
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** A labelled form field: the label text above the control. */
export function field(text, control, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'label' }, text), control,
    hint ? h('span', { class: 'muted small' }, hint) : null);
}

/** A badge whose colour says good, warn or bad. */
export function badge(text, tone) {
  return h('span', { class: tone ? `badge ${tone}` : 'badge' }, text);
}

/** The namespace SVG elements live in. */
const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * Makes an SVG element, as h() does an HTML one: `svg('circle', { cx: 1,
 * r: 2 })`. Only presentation attributes and classes, never a style
 * attribute, so the content security policy has nothing to refuse.
 */
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    element.setAttribute(name, String(value));
  }
  return append(element, children);
}
