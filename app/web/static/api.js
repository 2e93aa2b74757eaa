// The citizen API as the app uses it: the app token lives only in this browser's localStorage.
const TOKEN_KEY = 'citycode.appToken';

export const token = {
  get: () => localStorage.getItem(TOKEN_KEY),
  set: (value) => localStorage.setItem(TOKEN_KEY, value),
  clear: () => localStorage.removeItem(TOKEN_KEY),
};

/** An answer the service gave (status and problem document), as opposed to no answer at all. */
export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && problem.detail) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** No answer: the network or the service is down. Offline minting (offline.js) may step in. */
export class Unreachable extends Error {}

// Server time minus this device's time, from the last answer's Date header (whole seconds: the
// midpoint of the second is the best guess). Code times are the server's; a phone clock may be off.
let offsetMs = 0;

/** The service's clock, as far as this device can tell. */
export const serverNow = () => Date.now() + offsetMs;

export async function call(method, path, appToken = token.get(), body = undefined) {
  let response;
  const headers = { Authorization: `Bearer ${appToken}`, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  try {
    response = await fetch(path, {
      method, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new Unreachable(String(err));
  }
  const date = Date.parse(response.headers.get('Date') || '');
  if (!Number.isNaN(date)) offsetMs = date + 500 - Date.now();
  const answer = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, answer);
  return answer;
}

export const me = (appToken) => call('GET', '/v1/me', appToken);
export const credentials = () => call('GET', '/v1/me/credentials');
export const newCode = () => call('POST', '/v1/me/code');
export const pending = () => call('GET', '/v1/me/disclosures?status=pending');
export const answer = (id, approve) => call('POST', `/v1/me/disclosures/${encodeURIComponent(id)}/${approve ? 'approve' : 'deny'}`);
export const history = () => call('GET', '/v1/me/history?limit=30');
export const registerDevice = (body) => call('POST', '/v1/me/devices', undefined, body);
export const refreshDevice = (id, body) => call('POST', `/v1/me/devices/${encodeURIComponent(id)}/certificate`, undefined, body);
export const removeDevice = (id, appToken) => call('DELETE', `/v1/me/devices/${encodeURIComponent(id)}`, appToken);
