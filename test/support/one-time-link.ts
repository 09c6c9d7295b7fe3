import type { Page } from 'playwright-core';
/**
 * What a browser does with a one-time control-plane link (`/connect/<token>`, `/oauth/start/<token>`):
 * its GET only shows a page with a "Continue" form (link previews must not spend it), and pressing the
 * button POSTs the form back with the cookie that page set. Returns the POST's answer, redirects not
 * followed (a 303 to the session page or the authorization server); when the GET shows no form (a used,
 * expired or unknown link) returns that page instead.
 */
export async function openOneTimeLink(link: string | URL, headers: Record<string, string> = {}): Promise<Response> {
  const page = await fetch(link, { redirect: 'manual', headers });
  if (page.status !== 200) return page;
  const body = await page.text();
  const csrf = /<form method="post"(?: action="[^"]*")?><input type="hidden" name="csrf" value="([^"]+)">/.exec(body)?.[1];
  if (csrf === undefined) throw new Error(`the link's page has no Continue form: ${body.slice(0, 200)}`);
  const cookie = page.headers
    .getSetCookie()
    .map((line) => line.split(';')[0] ?? '')
    .join('; ');
  return fetch(link, {
    method: 'POST',
    redirect: 'manual',
    headers: { ...headers, cookie: [headers.cookie, cookie].filter(Boolean).join('; '), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf }),
  });
}

/** The same in a real browser page: open the link, press Continue, and wait for where it leads. */
export async function openOneTimeLinkInPage(page: Page, link: string): Promise<void> {
  await page.goto(link);
  await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Continue', exact: true }).click()]);
}
