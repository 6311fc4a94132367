// The Agents table of the site administration (CONTRACT §12): each agent's two-factor state,
// whether it is disabled or locked out, its last sign-in, and the admin's actions on it:
// change role, disable/enable, reset two-factor, unlock, set a new password, remove.
import { h, clear, setNotice } from '../shared/dom.js';
import { ApiError } from '../shared/http.js';
import { describeError, formatDateTime } from '../shared/format.js';
import { api } from '../shared/session.js';

/**
 * Fill `body` (the table's tbody) with `agents`.
 * ctx: { siteId, me (the signed-in agent or null), canEdit, notice (element),
 *        onChanged(), onDelete(agent), onSessionEnded() }
 */
export function renderAgentRows(body, agents, ctx) {
  clear(body);
  for (const a of agents) body.append(...agentRows(a, ctx));
}

function agentPath(ctx, agent) {
  return `/api/v1/sites/${encodeURIComponent(ctx.siteId)}/agents/${encodeURIComponent(agent.agentId)}`;
}

/** PATCH the agent after an optional confirm; says what happened in the notice. */
async function change(ctx, agent, patch, { confirm = null, done }) {
  // eslint-disable-next-line no-alert
  if (confirm && !window.confirm(confirm)) return false;
  setNotice(ctx.notice, '');
  try {
    await api(agentPath(ctx, agent), { method: 'PATCH', body: patch });
    setNotice(ctx.notice, done, 'ok');
    ctx.onChanged();
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      ctx.onSessionEnded();
    } else if (err instanceof ApiError && (err.status === 409 || err.status === 400)) {
      setNotice(ctx.notice, err.message, 'error');
    } else {
      setNotice(ctx.notice, describeError(err), 'error');
    }
    return false;
  }
}

function button(text, testid, agent, { kind = 'secondary', disabled = false, title = null } = {}) {
  return h('button', {
    type: 'button',
    class: kind,
    'data-testid': testid,
    'data-agent-id': agent.agentId,
    disabled,
    title,
    text,
  });
}

function agentRows(a, ctx) {
  const isMe = Boolean(ctx.me && ctx.me.agentId === a.agentId);
  const who = a.name || a.email;
  const off = !ctx.canEdit;

  const role = h(
    'select',
    { 'data-testid': 'agent-role-select', 'data-agent-id': a.agentId, 'aria-label': `Role of ${who}`, disabled: off },
    h('option', { value: 'agent', text: 'agent' }),
    h('option', { value: 'admin', text: 'admin' }),
  );
  role.value = a.role;
  role.addEventListener('change', async () => {
    const ok = await change(ctx, a, { role: role.value }, {
      confirm: `Make ${who} ${role.value === 'admin' ? 'an admin' : 'an agent'}?`,
      done: `${who} is now ${role.value === 'admin' ? 'an admin' : 'an agent'}.`,
    });
    if (!ok) role.value = a.role;
  });

  const totp = h(
    'td',
    {},
    h('span', { class: `tag${a.totpEnabled ? ' ok' : ''}`, 'data-testid': 'agent-totp', text: a.totpEnabled ? 'On' : 'Off' }),
  );
  if (a.totpEnabled) {
    const reset = button('Reset', 'agent-reset-totp', a, { disabled: off });
    reset.addEventListener('click', () =>
      change(ctx, a, { resetTotp: true }, {
        confirm: `Turn off two-factor authentication for ${who}? They will sign in with the password alone until they set it up again.`,
        done: `Two-factor authentication is off for ${who}.`,
      }),
    );
    totp.append(' ', reset);
  }

  const status = h('td', {});
  status.append(
    a.disabled
      ? h('span', { class: 'tag warn', 'data-testid': 'agent-state', text: 'Disabled' })
      : h('span', { class: 'tag ok', 'data-testid': 'agent-state', text: 'Active' }),
  );
  if (a.locked) {
    const unlock = button('Unlock', 'agent-unlock', a, { disabled: off });
    unlock.addEventListener('click', () =>
      change(ctx, a, { unlock: true }, { done: `${who} can sign in again.` }),
    );
    status.append(' ', h('span', { class: 'tag warn', 'data-testid': 'agent-locked', text: 'Locked out' }), ' ', unlock);
  }

  const toggle = button(a.disabled ? 'Enable' : 'Disable', 'agent-toggle-disabled', a, {
    disabled: off || isMe,
    title: isMe ? 'You cannot disable yourself' : null,
  });
  toggle.addEventListener('click', () =>
    a.disabled
      ? change(ctx, a, { disabled: false }, { done: `${who} can sign in again.` })
      : change(ctx, a, { disabled: true }, {
          confirm: `Disable ${who}? They are signed out everywhere at once and cannot sign in until enabled again.`,
          done: `${who} is disabled and was signed out everywhere.`,
        }),
  );

  const setPassword = button('Set password', 'agent-set-password', a, { disabled: off });
  const remove = button('Remove', 'delete-agent', a, {
    kind: 'danger',
    disabled: off || isMe,
    title: isMe ? 'You cannot remove yourself' : null,
  });
  remove.addEventListener('click', () => ctx.onDelete(a));

  const row = h(
    'tr',
    { 'data-testid': 'agent-item', 'data-agent-id': a.agentId },
    h('td', { text: `${a.name || ''}${isMe ? ' (you)' : ''}` }),
    h('td', { text: a.email }),
    h('td', {}, role),
    totp,
    status,
    h('td', { class: 'small', text: a.lastLoginAt ? formatDateTime(a.lastLoginAt) : 'Never' }),
    h('td', { class: 'agent-actions' }, toggle, ' ', setPassword, ' ', remove),
  );

  // The new password's own row, shown by "Set password".
  const input = h('input', {
    type: 'password',
    autocomplete: 'new-password',
    minlength: '12',
    maxlength: '1024',
    'aria-label': `New password for ${who}`,
    'data-testid': 'agent-new-password',
  });
  const save = button('Save password', 'agent-save-password', a, { kind: '' });
  const cancel = button('Cancel', 'agent-cancel-password', a);
  const form = h(
    'tr',
    { class: 'password-row', hidden: true },
    h(
      'td',
      { colspan: '7' },
      h('div', { class: 'row' }, input, save, cancel,
        h('span', { class: 'small muted', text: '12 characters or more. Saving signs the agent out everywhere.' })),
    ),
  );
  setPassword.addEventListener('click', () => {
    form.hidden = !form.hidden;
    if (!form.hidden) input.focus();
  });
  cancel.addEventListener('click', () => {
    input.value = '';
    form.hidden = true;
  });
  save.addEventListener('click', async () => {
    if ([...input.value].length < 12) {
      setNotice(ctx.notice, 'The new password needs at least 12 characters.', 'error');
      input.focus();
      return;
    }
    const ok = await change(ctx, a, { password: input.value }, {
      confirm: isMe ? null : `Set a new password for ${who}? They are signed out everywhere and sign in with the new one.`,
      done: `${who} has a new password and was signed out everywhere.`,
    });
    if (ok) input.value = '';
  });
  return [row, form];
}
