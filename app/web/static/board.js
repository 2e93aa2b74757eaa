// A hall's display board: polls the public board endpoint and highlights each new call (no sound).
const POLL_MS = 2000;
const HIGHLIGHT_MS = 10000;
const root = document.getElementById('board');
const counterText = root.dataset.counterText;
const seen = new Map(); // counter -> ticket shown last
const highlight = new Map(); // counter -> {ticket, until}: a new call, highlighted for a while
let first = true;

function render(board) {
  const list = document.getElementById('calling');
  const items = board.calling.map(({ ticket, counter }) => {
    const li = document.createElement('li');
    li.className = 'call';
    li.dataset.ticket = ticket;
    li.dataset.counter = counter;
    const number = document.createElement('span');
    number.className = 'ticket';
    number.textContent = ticket;
    const where = document.createElement('span');
    where.className = 'counter';
    where.textContent = counterText.replace('{counter}', counter);
    li.append(number, where);
    if (!first && seen.get(counter) !== ticket) highlight.set(counter, { ticket, until: Date.now() + HIGHLIGHT_MS });
    const lit = highlight.get(counter);
    if (lit && lit.ticket === ticket && lit.until > Date.now()) li.classList.add('new');
    return li;
  });
  seen.clear();
  board.calling.forEach(({ ticket, counter }) => seen.set(counter, ticket));
  list.replaceChildren(...items);
  document.getElementById('none-calling').hidden = items.length > 0;
  document.querySelectorAll('[data-service]').forEach((cell) => {
    cell.textContent = String(board.waiting[cell.dataset.service] ?? 0);
  });
  first = false;
}

async function poll() {
  try {
    const response = await fetch(root.dataset.boardUrl, { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    document.getElementById('board-stale').hidden = true;
    document.getElementById('updated').textContent = new Date().toLocaleTimeString(document.documentElement.lang, { timeZone: 'Asia/Shanghai', hourCycle: 'h23' });
  } catch {
    document.getElementById('board-stale').hidden = false;
  }
  setTimeout(poll, POLL_MS);
}

poll();
