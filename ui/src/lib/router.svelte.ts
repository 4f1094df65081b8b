/**
 * A small path router over the History API: the gateway answers every page
 * path with index.html, so /tokens or /db/main/console/tgt_x reloads as itself.
 */
export const route = $state({ path: typeof location === 'undefined' ? '/' : location.pathname });

export function navigate(path: string, replace = false): void {
  if (path === route.path) return;
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  route.path = path;
  document.getElementById('main')?.focus();
}

if (typeof window !== 'undefined') {
  window.addEventListener('popstate', () => {
    route.path = location.pathname;
  });
}

/** The first path segment after the base (`/targets/x` -> `targets`). */
export function pageOf(path: string): string {
  return path.split('/').filter(Boolean)[0] ?? 'dashboard';
}

export function paramOf(path: string, index = 1): string | undefined {
  return path.split('/').filter(Boolean)[index];
}
