// The citizen app's service worker: the app shell (page, scripts, styles, icons) opens with no
// network. API answers are never cached: offline, the page mints a code on the phone
// (offline.js, devicecode.js) or says it is offline; it never shows a stale code.
const CACHE = 'citycode-app-v2';
const SHELL = ['/app', '/web/static/app.js', '/web/static/api.js', '/web/static/qr.js',
  '/web/static/offline.js', '/web/static/devicecode.js', '/web/static/web.css', '/web/static/icon.svg', '/app/manifest.webmanifest'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
    .then(() => self.clients.claim()));
});

function shellKey(url) {
  return url.pathname === '/app' ? '/app' : url.pathname;
}

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  const inShell = url.origin === self.location.origin && event.request.method === 'GET'
    && (url.pathname === '/app' || url.pathname === '/app/manifest.webmanifest' || url.pathname.startsWith('/web/static/'));
  if (!inShell) return; // the API goes to the network, always
  // Network first (the page follows the chosen language and new releases), the cache when offline.
  event.respondWith(fetch(event.request).then((response) => {
    if (response.ok) {
      const copy = response.clone();
      caches.open(CACHE).then((cache) => cache.put(shellKey(url), copy));
    }
    return response;
  }).catch(() => caches.match(shellKey(url)).then((hit) => hit || Response.error())));
});
