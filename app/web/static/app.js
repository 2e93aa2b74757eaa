// The citizen app: sign in with the app token, show a fresh code as QR, answer disclosure requests,
// list entitlements, credentials and history. A plain client of the /v1/me API.
import * as api from './api.js';
import * as offline from './offline.js';
import { encode, toSvg } from './qr.js';

const TEXTS = JSON.parse(document.getElementById('texts').textContent);
const T = TEXTS.t;
const $ = (id) => document.getElementById(id);
const fmt = (text, values = {}) => text.replace(/%\((\w+)\)s/g, (_, key) => String(values[key] ?? ''));
const timeFmt = new Intl.DateTimeFormat(TEXTS.locale, { timeZone: TEXTS.timeZone, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
const dateFmt = new Intl.DateTimeFormat(TEXTS.locale, { timeZone: TEXTS.timeZone, dateStyle: 'medium', timeStyle: 'short', hourCycle: 'h23' });
const PENDING_POLL_MS = 5000;
const RETRY_MS = 5000;
const DEVICE_CHECK_MS = 5 * 60 * 1000; // offline.register renews the certificate once it is due
const MODES = { online: T.online, 'offline-sealed': T.offlineSealed, offline: T.offlineSigned };

const state = { code: null, refreshTimer: 0, tick: 0, poll: 0, device: 0, halls: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  Object.entries(attrs).forEach(([key, value]) => node.setAttribute(key, value));
  children.filter((c) => c !== null && c !== undefined).forEach((c) => node.append(c));
  return node;
}

function fill(list, items, empty) {
  list.replaceChildren(...(items.length ? items : [el('li', { class: 'quiet' }, empty)]));
}

// -- the code ------------------------------------------------------------------------------------
function clearCode() {
  state.code = null;
  $('qr').replaceChildren();
  $('qr').hidden = true;
  delete $('qr').dataset.mode;
  $('code-alt').textContent = '';
  $('countdown').textContent = '';
  $('mode').textContent = '';
}

// The banner: offline with a code made on this phone, offline with no code, or hidden online.
function banner(offlineNow) {
  const minted = state.code && state.code.mode !== 'online';
  $('net').hidden = !offlineNow && !minted;
  $('net').textContent = minted ? T.offlineMinted : T.offline;
}

function showCode(fresh, mode) {
  const qr = encode(fresh.code);
  state.code = { ...fresh, mode, expires: Date.parse(fresh.expires_at), refresh: Date.parse(fresh.refresh_after) };
  const until = timeFmt.format(new Date(state.code.expires));
  const box = $('qr');
  box.replaceChildren(toSvg(qr));
  box.hidden = false;
  box.dataset.code = fresh.code;
  box.dataset.mode = mode;
  box.setAttribute('aria-label', fmt(T.qrLabel, { time: until }));
  $('code-alt').textContent = fmt(T.validUntil, { time: until });
  $('mode').textContent = MODES[mode];
  $('mode').classList.toggle('minted', mode !== 'online');
  banner(mode !== 'online');
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(refreshCode, Math.max(1000, state.code.refresh - api.serverNow()));
  tick();
}

function tick() {
  clearTimeout(state.tick);
  if (!state.code) return;
  const now = api.serverNow();
  if (now >= state.code.expires) { // never leave an expired code on screen
    clearCode();
    refreshCode();
    return;
  }
  const seconds = Math.max(0, Math.ceil((state.code.refresh - now) / 1000));
  $('countdown').textContent = fmt(T.refreshIn, { seconds });
  state.tick = setTimeout(tick, 1000 - (now % 1000));
}

function showOffline() {
  banner(true);
  if (!state.code) $('code-alt').textContent = T.offline;
}

// No network: a code made on this phone, if it holds a valid certificate; else say so.
async function offlineCode() {
  const minted = await offline.mint().catch(() => null);
  if (minted) { showCode(minted, minted.mode); return true; }
  showOffline();
  return false;
}

async function refreshCode() {
  clearTimeout(state.refreshTimer);
  if (!api.token.get()) return;
  $('countdown').textContent = T.refreshing;
  try {
    if (navigator.onLine === false) throw new api.Unreachable('offline');
    showCode(await api.newCode(), 'online');
  } catch (err) {
    if (err instanceof api.Unreachable) {
      if (await offlineCode()) return;
    } else if (err.status === 401) {
      signOut(T.signInFailed);
      return;
    } else if (err.status === 403) {
      offline.withdraw().catch(() => {}); // nor offline codes from this phone
      showDevice(null);
      clearCode();
      $('code-alt').textContent = T.suspended;
    }
    state.refreshTimer = setTimeout(refreshCode, RETRY_MS);
  }
}

// -- this phone's offline codes ----------------------------------------------------------------
function showDevice(device) {
  const line = $('device');
  line.dataset.ready = device ? (device.sealed ? 'sealed' : 'signed') : '';
  line.textContent = device ? fmt(T.deviceReady, { date: dateFmt.format(new Date(device.expires_at * 1000)) }) : '';
}

/** In the background while online: register this phone, or renew its certificate when due. */
async function syncDevice() {
  clearTimeout(state.device);
  if (!api.token.get()) return;
  state.device = setTimeout(syncDevice, DEVICE_CHECK_MS);
  if (navigator.onLine === false || !offline.supported()) return;
  try {
    const profile = await api.me();
    showDevice(await offline.register(profile.citizen_id));
  } catch (err) {
    if (!(err instanceof api.Unreachable)) showDevice(null); // the code refresh deals with 401/403
  }
}

// -- lists ---------------------------------------------------------------------------------------
async function hallNames() {
  if (!state.halls) {
    const halls = await fetch('/v1/halls').then((r) => r.json()).catch(() => []);
    state.halls = Object.fromEntries(halls.map((h) => [h.hall, h.name]));
  }
  return state.halls;
}

function where(site, halls) {
  const parts = [];
  if (site.hall) parts.push(halls[site.hall] || site.hall);
  if (site.counter) parts.push(fmt(T.counter, { counter: site.counter }));
  ['station', 'spot', 'line', 'vehicle'].forEach((key) => { if (site[key]) parts.push(site[key]); });
  return parts.join(' · ');
}

const fieldName = (qualified) => {
  const [type, ...rest] = qualified.split('.');
  const field = rest.join('.');
  return `${TEXTS.credentialTypes[type] || type} · ${TEXTS.fields[field] || field}`;
};

async function loadPending() {
  const [requests, halls] = await Promise.all([api.pending(), hallNames()]);
  fill($('pending'), requests.map((d) => {
    const who = where(d.where, halls) || fmt(T.terminal, { id: d.terminal_id });
    const approve = el('button', { type: 'button', class: 'primary', 'aria-label': fmt(T.approveLabel, { who }) }, T.approve);
    const deny = el('button', { type: 'button', 'aria-label': fmt(T.denyLabel, { who }) }, T.deny);
    const outcome = el('p', { role: 'status', class: 'outcome' });
    const act = async (yes) => {
      approve.disabled = true; deny.disabled = true;
      try {
        await api.answer(d.disclosure_id, yes);
        outcome.textContent = yes ? T.approved : T.denied;
      } catch (err) {
        outcome.textContent = err.message;
      }
      setTimeout(() => { loadPending().catch(() => {}); loadHistory().catch(() => {}); }, 1500);
    };
    approve.addEventListener('click', () => act(true));
    deny.addEventListener('click', () => act(false));
    return el('li', { class: 'card request', 'data-id': d.disclosure_id },
      el('p', {}, el('strong', {}, `${T.asks}: `), who),
      el('p', {}, el('strong', {}, `${T.fieldsAsked}: `)),
      el('ul', { class: 'fields' }, ...d.fields.map((f) => el('li', {}, fieldName(f)))),
      el('p', {}, el('strong', {}, `${T.purpose}: `), d.purpose),
      el('p', { class: 'small' }, `${T.expires}: ${timeFmt.format(new Date(d.expires_at))}`),
      el('div', { class: 'actions' }, approve, deny), outcome);
  }), T.noPending);
}

async function loadProfile() {
  const [profile, creds] = await Promise.all([api.me(), api.credentials()]);
  $('who').textContent = `${profile.name_masked} · ${profile.id_number_masked}`;
  fill($('entitlements'), profile.entitlements.map((e) => el('li', {}, TEXTS.entitlements[e] || e)), T.noEntitlements);
  fill($('credentials'), creds.map((c) => el('li', {},
    el('strong', {}, TEXTS.credentialTypes[c.type] || c.type), ` ${c.number_masked} · ${c.issuer} · `,
    T.status[c.status] || c.status,
    c.valid_until ? ` · ${fmt(T.validTo, { date: dateFmt.format(new Date(c.valid_until)) })}` : '')), T.noCredentials);
}

const yuan = (fare) => (fare.amount_cents / 100).toFixed(2);

async function loadHistory() {
  const [past, halls] = await Promise.all([api.history(), hallNames()]);
  fill($('trips'), (past.trips || []).map((trip) => el('li', {},
    `${dateFmt.format(new Date(trip.at))} · `,
    trip.fare.from ? fmt(T.trip, { from: trip.fare.from, to: trip.fare.to }) : T.unpaired,
    ` · ${fmt(T.fare, { amount: yuan(trip.fare) })}`)), T.noHistory);
  fill($('history'), past.entries.map((entry) => {
    const bits = [TEXTS.actions[entry.action] || entry.action, where(entry.where, halls)];
    if (entry.decision) bits.push(entry.decision === 'accept' ? T.decisionAccept : `${T.decisionDeny}: ${TEXTS.reasons[entry.reason] || entry.reason}`);
    if (entry.fare) bits.push(fmt(T.fare, { amount: yuan(entry.fare) }));
    if (entry.ticket) bits.push(fmt(T.ticket, { ticket: entry.ticket }));
    if (entry.purpose) bits.push(entry.purpose);
    if (entry.fields) bits.push(entry.fields.map(fieldName).join(', '));
    return el('li', {}, el('time', { datetime: entry.at }, dateFmt.format(new Date(entry.at))), ` ${bits.filter(Boolean).join(' · ')}`);
  }), T.noHistory);
}

function pollPending() {
  clearTimeout(state.poll);
  if (!api.token.get()) return;
  if (document.visibilityState === 'visible') loadPending().catch(() => {});
  state.poll = setTimeout(pollPending, PENDING_POLL_MS);
}

// -- signing in and out --------------------------------------------------------------------------
function showSignedIn() {
  $('signin').hidden = true;
  $('signed-in').hidden = false;
  refreshCode();
  loadProfile().catch(() => {});
  loadHistory().catch(() => {});
  pollPending();
  syncDevice();
}

function signOut(message = '') {
  const signedOut = api.token.get();
  api.token.clear();
  offline.forget(signedOut).catch(() => {}); // this phone's key and certificates go too
  [state.refreshTimer, state.tick, state.poll, state.device].forEach(clearTimeout);
  clearCode();
  showDevice(null);
  $('net').hidden = true;
  ['pending', 'entitlements', 'credentials', 'trips', 'history'].forEach((id) => $(id).replaceChildren());
  $('who').textContent = '';
  $('signed-in').hidden = true;
  $('signin').hidden = false;
  $('signin-error').textContent = message;
}

$('signin-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const value = $('token').value.trim();
  $('signin-error').textContent = '';
  try {
    await api.me(value);
  } catch (err) {
    $('signin-error').textContent = err instanceof api.Unreachable ? T.network
      : err.status === 403 ? T.notCitizen : T.signInFailed;
    return;
  }
  api.token.set(value);
  $('token').value = '';
  showSignedIn();
});
$('signout').addEventListener('click', () => signOut());
$('refresh').addEventListener('click', () => refreshCode());
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && api.token.get()) { refreshCode(); pollPending(); }
});
window.addEventListener('online', () => { if (api.token.get()) { refreshCode(); syncDevice(); } });
window.addEventListener('offline', showOffline);

if ('serviceWorker' in navigator) navigator.serviceWorker.register('/app/sw.js', { scope: '/app' }).catch(() => {});
if (api.token.get()) showSignedIn(); else signOut();
