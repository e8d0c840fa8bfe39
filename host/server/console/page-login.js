// Sign in: paste a bearer token; the console asks the API what it may do.

import { h, replace, errorBox } from './dom.js';

/** Longest token accepted from the field: the node's tokens are 68
 * characters and it refuses anything over 256 unread. */
const TOKEN_CHARS_MAX = 256;

export async function render({ view, signIn, identify }) {
  const input = h('input', {
    type: 'password', id: 'token', name: 'token', autocomplete: 'off', spellcheck: 'false',
    required: true, maxlength: TOKEN_CHARS_MAX, placeholder: 'bzr_…',
  });
  const problem = h('div');
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'card stack login', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Sign in to the Bazaar console'),
    h('label', { for: 'token' }, h('span', { class: 'label' }, 'API token'), input),
    h('p', { class: 'muted small' },
      'An operator token is in the node\'s data directory (operator-token); operators issue merchant tokens with POST /v1/tokens. ',
      'The token stays in this browser tab only.'),
    submit, problem);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const secret = input.value.trim();
    replace(problem);
    if (!secret) {
      replace(problem, errorBox(new Error('Paste a token first.')));
      return;
    }
    submit.disabled = true;
    try {
      const who = await identify(secret);
      signIn(secret, who);
    } catch (error) {
      const message = error.status === 401 ? 'The node does not know this token (it may have been revoked).' : error.message;
      replace(problem, errorBox({ message }));
    } finally {
      submit.disabled = false;
    }
  });
  replace(view, form);
  input.focus();
}
