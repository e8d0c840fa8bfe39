// The operator's stores: every store a page at a time, and a form to open
// a new one.

import { call, get } from './api.js';
import { errorBox, field, h, replace, table } from './dom.js';
import { count } from './format.js';

/** Stores on one page. The API allows up to 100. */
const PAGE_SIZE = 50;

/** Longest store id and name the node takes (its identifier and text
 * limits); the fields stop longer input before it is sent. */
const STORE_ID_CHARS_MAX = 64;
const STORE_NAME_CHARS_MAX = 256;

export async function render({ view, signal, notify, session }) {
  const list = h('div', { id: 'stores' });
  const problem = h('div');
  const more = h('button', { type: 'button' }, 'More stores');
  const id = h('input', { type: 'text', id: 'new-store-id', required: true, maxlength: STORE_ID_CHARS_MAX, pattern: '[A-Za-z0-9._\\-]+' });
  const name = h('input', { type: 'text', id: 'new-store-name', required: true, maxlength: STORE_NAME_CHARS_MAX });
  const currency = h('input', { type: 'text', id: 'new-store-currency', required: true, maxlength: 3, value: 'CNY', pattern: '[A-Z]{3}' });
  const created = h('div');
  const form = h('form', { class: 'card stack', 'aria-label': 'Create a store' },
    h('h2', {}, 'New store'),
    h('div', { class: 'row' },
      field('Id', id, 'Letters, digits, dot, underscore, dash.'),
      field('Name', name),
      field('Currency', currency, 'ISO-4217, fixed for the store\'s life.')),
    h('button', { type: 'submit', class: 'primary' }, 'Create store'), created);
  replace(view, h('div', { class: 'stack' }, h('h1', {}, 'Stores'), h('div', { class: 'card stack' }, problem, list, more), form));

  const stores = [];
  let after = null;
  const load = async () => {
    const page = await get(`/v1/stores?limit=${PAGE_SIZE}${after ? `&after=${encodeURIComponent(after)}` : ''}`, { signal });
    stores.push(...page.stores);
    after = page.next_after ?? null;
    more.hidden = after === null;
    const link = (store, page, text) => h('a', { href: `#/stores/${encodeURIComponent(store.id)}/${page}` }, text);
    replace(list, table([
      { label: 'Store', cell: (s) => link(s, 'dashboard', s.id) },
      { label: 'Name', cell: (s) => s.name },
      { label: 'Currency', cell: (s) => s.currency },
      { label: 'Products', cell: (s) => count(s.products), num: true },
      { label: 'Warehouses', cell: (s) => count(s.warehouses), num: true },
      { label: 'Orders', cell: (s) => link(s, 'orders', count(s.orders)), num: true },
      { label: 'Plugins', cell: (s) => link(s, 'marketplace', s.plugins.map((p) => p.plugin).join(', ') || 'none') },
    ], stores, { label: 'Stores', empty: 'No store yet.' }));
  };
  more.addEventListener('click', () => load().catch((error) => replace(problem, errorBox(error))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    replace(created);
    try {
      const store = await call('POST', '/v1/stores', { id: id.value.trim(), name: name.value.trim(), currency: currency.value.trim() }, { signal });
      notify(`Store ${store.id} is open.`);
      if (!session.stores.includes(store.id)) session.stores.push(store.id);
      stores.length = 0;
      after = null;
      await load();
      form.reset();
    } catch (error) {
      replace(created, errorBox(error));
    }
  });
  await load();
}
