// The marketplace: every installed plugin with what it may do in plain
// words, and, for a store, enabling it with a configuration (checked by
// the node against the plugin's schema), consent, a version pin, a
// priority and exclusivity; or disabling it.

import { call, get, seg } from './api.js';
import { actionButton, badge, errorBox, field, h, okBox, replace } from './dom.js';

/** Longest configuration the editor sends: the node refuses bodies over
 * 64 KiB, so a longer text is stopped here with a clear message. */
const CONFIG_CHARS_MAX = 60 * 1024;

/** The largest priority the node accepts (a u32). */
const PRIORITY_MAX = 4294967295;

/** What happens to an order when the plugin fails, in words. */
const POLICY_WORDS = {
  'fail-open': 'If it fails, orders go on without it.',
  'fail-closed': 'If it fails, orders are refused until it works again.',
  fallback: 'If it fails, the built-in behaviour stands in.',
};

/** What each kind of plugin does, in words. */
const KIND_WORDS = {
  pricing: 'Pricing: adjusts the prices of carts and orders.',
  logistics: 'Logistics: picks warehouses and carriers for orders.',
  risk: 'Risk: approves or refuses orders before stock is reserved.',
  analytics: 'Analytics: reads the store\'s events to compute live figures; never on the order path.',
};

export async function render({ view, params, signal, notify }) {
  const store = params.store ?? null;
  const listing = await get('/v1/plugins', { signal });
  const enabled = new Map();
  if (store) {
    const mine = await get(`/v1/stores/${seg(store)}/plugins`, { signal });
    for (const plugin of mine.plugins) enabled.set(plugin.plugin, plugin);
  }
  const cards = h('div', { class: 'grid' });
  replace(view, h('div', { class: 'stack' },
    h('h1', {}, store ? `Marketplace: ${store}` : 'Marketplace'),
    h('p', { class: 'muted' }, store
      ? 'Enable a plugin for this store: give it a configuration, consent to what it asks for, and choose how it runs.'
      : 'The installed plugins. Stores enable them with a merchant token.'),
    cards));

  const reload = async () => {
    const mine = await get(`/v1/stores/${seg(store)}/plugins`, { signal });
    enabled.clear();
    for (const plugin of mine.plugins) enabled.set(plugin.plugin, plugin);
    renderCards();
  };
  const renderCards = () => replace(cards, listing.plugins.map((plugin) => card(plugin, store, enabled.get(plugin.id), reload, notify)));
  renderCards();
}

/** One plugin's card, with its editor when a store is chosen. */
function card(plugin, store, current, reload, notify) {
  const editorSlot = h('div');
  const status = current
    ? badge(current.settings.version_pin ? `enabled, pinned to ${current.settings.version_pin}` : 'enabled', 'good')
    : badge('not enabled');
  const actions = store ? h('div', { class: 'row' },
    h('button', {
      type: 'button', class: 'primary', 'aria-label': `${current ? 'Configure' : 'Enable'} ${plugin.id}`,
      onclick: () => {
        // The editor needs room: its card takes the whole row while open.
        editorSlot.closest('.plugin-card')?.classList.add('wide');
        replace(editorSlot, editor(plugin, store, current, reload, notify));
      },
    }, current ? 'Configure…' : 'Enable…'),
    current ? actionButton('Disable', async () => {
      await call('DELETE', `/v1/stores/${seg(store)}/plugins/${seg(plugin.id)}`);
      notify(`${plugin.name} is disabled for ${store}.`);
      await reload();
    }, { kind: 'danger', label: `Disable ${plugin.id}`, onError: (error) => replace(editorSlot, errorBox(error)) }) : null) : null;
  return h('section', { class: 'card plugin-card stack', id: `plugin-${plugin.id}`, 'aria-labelledby': `title-${plugin.id}` },
    h('div', {},
      h('h2', { id: `title-${plugin.id}` }, plugin.name),
      h('div', { class: 'row small muted' }, h('code', {}, plugin.id), h('span', {}, `by ${plugin.publisher}`),
        h('span', {}, plugin.active ? `version ${plugin.active}` : 'no active version'), store ? status : null)),
    h('p', {}, plugin.description),
    h('p', { class: 'small' }, KIND_WORDS[plugin.kind] ?? plugin.kind, ' ', POLICY_WORDS[plugin.failure_policy] ?? plugin.failure_policy),
    h('div', {}, h('strong', { class: 'small' }, 'It asks to:'),
      plugin.capabilities.length
        ? h('ul', {}, plugin.capabilities.map((c) => h('li', {}, c.plain_words, ' ', h('span', { class: 'muted small' }, `(${c.name})`))))
        : h('p', { class: 'muted small' }, 'nothing beyond its inputs.')),
    actions, editorSlot);
}

/** The form enabling or reconfiguring `plugin` for `store`. */
function editor(plugin, store, current, reload, notify) {
  const id = plugin.id;
  const config = h('textarea', { id: `config-${id}`, name: 'config', spellcheck: 'false', 'aria-describedby': `config-hint-${id}` });
  config.value = JSON.stringify(current?.config ?? {}, null, 2);
  const consented = new Set(current?.settings.consented ?? []);
  const consent = plugin.capabilities.map((capability) => {
    const box = h('input', { type: 'checkbox', id: `consent-${id}-${capability.name}`, value: capability.name, checked: consented.has(capability.name) });
    return { capability, box };
  });
  const version = h('select', { id: `version-${id}`, name: 'version' },
    h('option', { value: '' }, `Follow the active version${plugin.active ? ` (${plugin.active})` : ''}`),
    plugin.versions.map((v) => h('option', { value: v.version, selected: current?.settings.version_pin === v.version }, `Pin ${v.version}`)));
  const priority = h('input', { type: 'number', id: `priority-${id}`, min: 0, max: PRIORITY_MAX, step: 1, value: current?.settings.priority ?? 0 });
  const exclusive = h('input', { type: 'checkbox', id: `exclusive-${id}`, checked: current?.settings.exclusive ?? false });
  const result = h('div', { id: `result-${id}` });
  const save = h('button', { type: 'submit', class: 'primary' }, current ? 'Save' : 'Enable');
  const form = h('form', { class: 'stack', 'aria-label': `Configure ${plugin.name}` },
    h('label', { for: `config-${id}` }, h('span', { class: 'label' }, 'Configuration (JSON)'), config),
    h('details', { id: `config-hint-${id}` }, h('summary', { class: 'small' }, 'Configuration schema'),
      h('pre', {}, JSON.stringify(plugin.config_schema, null, 2))),
    plugin.capabilities.length ? h('fieldset', {}, h('legend', {}, 'Consent'),
      consent.map(({ capability, box }) => h('label', { class: 'check', for: box.id }, box,
        h('span', {}, `Allow it to ${lowerFirst(capability.plain_words)}`, ' ', h('span', { class: 'muted small' }, `(${capability.name})`))))) : null,
    h('div', { class: 'row' },
      field('Version', version),
      field('Priority', priority, 'Lower runs first among the store\'s pricing plugins.')),
    plugin.kind === 'pricing'
      ? h('label', { class: 'check', for: exclusive.id }, exclusive, h('span', {}, 'Exclusive: when it gives a discount, later pricing plugins do not run'))
      : null,
    h('div', { class: 'row' }, save, h('button', {
      type: 'button',
      onclick: () => {
        form.closest('.plugin-card')?.classList.remove('wide');
        form.remove();
      },
    }, 'Close')),
    result);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    replace(result);
    const text = config.value;
    if (text.length > CONFIG_CHARS_MAX) {
      replace(result, errorBox({ message: `The configuration is ${text.length} characters; the node takes at most ${CONFIG_CHARS_MAX}.` }));
      return;
    }
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      replace(result, errorBox({ message: `The configuration is not valid JSON: ${error.message}` }));
      return;
    }
    const rank = Number(priority.value);
    if (!Number.isInteger(rank) || rank < 0 || rank > PRIORITY_MAX) {
      replace(result, errorBox({ message: `The priority must be a whole number from 0 to ${PRIORITY_MAX}.`, field: 'priority' }));
      return;
    }
    const body = {
      config: parsed,
      consent: consent.filter(({ box }) => box.checked).map(({ capability }) => capability.name),
      version: version.value || null,
      priority: rank,
      exclusive: plugin.kind === 'pricing' ? exclusive.checked : false,
    };
    save.disabled = true;
    try {
      const stored = await call('PUT', `/v1/stores/${seg(store)}/plugins/${seg(id)}`, body);
      notify(`${plugin.name} is enabled for ${store}.`);
      await reload();
      const slot = document.getElementById(`plugin-${id}`);
      slot?.append(okBox(`Saved: ${plugin.name} runs for ${store} (revision ${stored.revision}).`));
    } catch (error) {
      replace(result, errorBox(error));
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

/** `text` with its first letter in lower case. */
function lowerFirst(text) {
  return text ? text[0].toLowerCase() + text.slice(1) : text;
}
