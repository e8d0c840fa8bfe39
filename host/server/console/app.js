// The console's shell: who is signed in (the token's role, learned from
// the API), the navigation, and hash routing to the pages. Each page gets
// an AbortSignal that fires when the reader leaves it, which stops its
// requests, its stream and its timers.

import { ApiError, get, setToken, token } from './api.js';
import { h, replace, errorBox } from './dom.js';
import * as login from './page-login.js';
import * as dashboard from './page-dashboard.js';
import * as orders from './page-orders.js';
import * as marketplace from './page-marketplace.js';
import * as analytics from './page-analytics.js';
import * as fleet from './page-fleet.js';
import * as plugins from './page-plugins.js';
import * as breakers from './page-breakers.js';
import * as stores from './page-stores.js';

/** Most stores offered in the store picker: one page of the API. An
 * operator of more stores finds the others on the Stores page. */
const PICKER_STORES_MAX = 100;

/** How long a notice stays up before it hides itself. */
const NOTICE_MS = 6000;

/** The pages of one store, in navigation order. */
const STORE_PAGES = [
  { path: 'dashboard', label: 'Dashboard', module: dashboard },
  { path: 'orders', label: 'Orders', module: orders },
  { path: 'marketplace', label: 'Marketplace', module: marketplace },
  { path: 'analytics', label: 'Analytics', module: analytics },
  { path: 'fleet', label: 'Fleet', module: fleet },
];

/** The operator's pages. */
const OPERATOR_PAGES = [
  { path: 'plugins', label: 'Plugins', module: plugins },
  { path: 'breakers', label: 'Breakers', module: breakers },
  { path: 'stores', label: 'Stores', module: stores },
];

/** Who is signed in: `{ role, stores }`, or null. */
let session = null;
/** Aborts the page on screen when the reader leaves it. */
let leaving = null;
/** The timer hiding the current notice. */
let noticeTimer = 0;

/**
 * The role of `secret`, learned from what it may read: operators may list
 * tokens; merchants may list (their) stores; partner and checkout tokens
 * may only browse the marketplace. Rejects with the API's refusal when
 * the token is not recognised.
 */
export async function identify(secret) {
  const options = { token: secret };
  try {
    await get('/v1/tokens', options);
    const listed = await get(`/v1/stores?limit=${PICKER_STORES_MAX}`, options);
    return { role: 'operator', stores: listed.stores.map((s) => s.id) };
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 403) throw error;
  }
  try {
    const listed = await get(`/v1/stores?limit=${PICKER_STORES_MAX}`, options);
    return { role: 'merchant', stores: listed.stores.map((s) => s.id) };
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 403) throw error;
  }
  await get('/v1/plugins', options);
  return { role: 'viewer', stores: [] };
}

/** Signs in with `secret` (already identified as `who`) and opens the
 * first page of its role. */
export function signIn(secret, who) {
  setToken(secret);
  session = who;
  location.hash = homeOf(who);
  route();
}

/** Forgets the token and shows the login page. */
function signOut() {
  setToken(null);
  session = null;
  document.getElementById('notice').hidden = true;
  location.hash = '#/login';
  route();
}

/** The first page of a role. */
function homeOf(who) {
  if (who.role === 'operator') return '#/plugins';
  if (who.stores.length > 0) return `#/stores/${encodeURIComponent(who.stores[0])}/dashboard`;
  return '#/marketplace';
}

/** Shows a notice under the bar for a few seconds. */
export function notify(text, isError = false) {
  const notice = document.getElementById('notice');
  notice.textContent = text;
  notice.classList.toggle('error', isError);
  notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { notice.hidden = true; }, NOTICE_MS);
}

/** The page and its parameters named by the location's hash. */
function resolve(hash) {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'login') return { module: login, params: {} };
  if (parts[0] === 'stores' && parts.length === 3) {
    const page = STORE_PAGES.find((p) => p.path === parts[2]);
    if (page) return { module: page.module, params: { store: parts[1] }, key: page.path };
  }
  if (parts[0] === 'marketplace' && parts.length === 1) return { module: marketplace, params: {}, key: 'marketplace' };
  if (parts[0] === 'plugins' && parts.length <= 2) return { module: plugins, params: { plugin: parts[1] ?? null }, key: 'plugins' };
  if (parts[0] === 'breakers') return { module: breakers, params: {}, key: 'breakers' };
  if (parts[0] === 'stores' && parts.length === 1) return { module: stores, params: {}, key: 'stores' };
  return null;
}

/** The navigation of the signed-in role, marking the page on screen. */
function renderNav(current) {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  if (!session) {
    replace(nav);
    replace(who);
    return;
  }
  const links = [];
  const store = current?.params?.store ?? session.stores[0];
  if (store) {
    const picker = h('select', { 'aria-label': 'Store', id: 'store-picker' },
      [...new Set([store, ...session.stores])].map((id) => h('option', { value: id, selected: id === store }, id)));
    picker.addEventListener('change', () => {
      const page = current?.params?.store ? current.key : 'dashboard';
      location.hash = `#/stores/${encodeURIComponent(picker.value)}/${page}`;
    });
    links.push(h('span', { class: 'group' }, 'Store'), picker);
    for (const page of STORE_PAGES) {
      const here = current?.params?.store === store && current.key === page.path;
      links.push(h('a', { href: `#/stores/${encodeURIComponent(store)}/${page.path}`, 'aria-current': here ? 'page' : null }, page.label));
    }
  } else if (session.role !== 'operator') {
    links.push(h('a', { href: '#/marketplace', 'aria-current': current?.key === 'marketplace' ? 'page' : null }, 'Marketplace'));
  }
  if (session.role === 'operator') {
    links.push(h('span', { class: 'group' }, 'Operator'));
    for (const page of OPERATOR_PAGES) {
      const here = !current?.params?.store && current?.key === page.path;
      links.push(h('a', { href: `#/${page.path}`, 'aria-current': here ? 'page' : null }, page.label));
    }
  }
  replace(nav, links);
  const signOutButton = h('button', { type: 'button', onclick: signOut }, 'Sign out');
  replace(who, h('span', { id: 'role' }, `Signed in as ${session.role}`), signOutButton);
}

/** Shows the page of the location's hash. */
async function route() {
  leaving?.abort();
  leaving = new AbortController();
  const signal = leaving.signal;
  const view = document.getElementById('view');
  if (!session && token()) {
    try {
      session = await identify(token());
    } catch (error) {
      setToken(null);
      notify(`Signed out: ${error.message}`, true);
    }
    if (signal.aborted) return;
  }
  let target = resolve(location.hash);
  if (!session && target?.module !== login) {
    location.replace('#/login');
    target = { module: login, params: {} };
  } else if (session && (!target || target.module === login)) {
    location.replace(homeOf(session));
    target = resolve(location.hash);
  }
  if (session && target.params.store && !session.stores.includes(target.params.store)) {
    session.stores.push(target.params.store);
  }
  renderNav(target);
  replace(view);
  try {
    await target.module.render({ view, params: target.params, signal, session, notify, signIn, identify });
  } catch (error) {
    if (signal.aborted) return;
    replace(view, errorBox(error));
  }
}

window.addEventListener('hashchange', route);
route();
