"""The Chat page's scrolling, done in the browser."""

# Keep the newest text in view, as chat apps do: follow the bottom while a reply streams, unless the
# user has scrolled up to read; a new message (or another chat) brings the bottom back. All in the
# browser: the server sends nothing extra.
AUTOSCROLL_JS = """
(() => {
  const box = getHtmlElement(%(box)s);
  const bottom = () => window.scrollTo(0, document.documentElement.scrollHeight);
  const nearBottom = () => window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 96;
  let follow = true, lastY = window.scrollY;
  window.addEventListener('scroll', () => {  // only the user scrolls up; growing text never does
    if (window.scrollY < lastY - 2) follow = false;
    else if (nearBottom()) follow = true;
    lastY = window.scrollY;
  }, {passive: true});
  new MutationObserver((changes) => {
    if (changes.some((c) => c.target === box && c.type === 'childList')) follow = true;
    if (follow) bottom();
  }).observe(box, {childList: true, subtree: true, characterData: true});
  bottom();
  box.dataset.autoscroll = '1';
})();
"""
