"""Esc closes an open overlay drawer (Quasar's dialogs close on Esc already, unless persistent).

A drawer takes part when it is marked with `closes_on_escape()`. It closes on Esc while it lies
over the page: always for an overlay drawer (`always=True`), and for a side panel only in its
narrow-screen form, where it covers the content. An open dialog or menu takes Esc first."""

from __future__ import annotations

from nicegui import ui

SCRIPT = """
<script>
document.addEventListener('keydown', (e) => {
  if (e.key !== 'Escape' || e.defaultPrevented) return;
  if (document.querySelector('.q-dialog, .q-menu')) return;  // Quasar closes those itself
  document.querySelectorAll('[data-esc-close]').forEach((content) => {  // NiceGUI's id sits inside the aside
    const mobile = content.closest('aside.q-drawer')?.classList.contains('q-drawer--mobile');
    if (content.dataset.escClose === 'always' || mobile) {
      runMethod(Number(content.id.replace(/^c/, '')), 'hide', []);  // a closed one stays closed
    }
  });
});
</script>
"""


def add_escape_closes_drawers() -> None:
    ui.add_head_html(SCRIPT, shared=True)


def closes_on_escape(drawer: ui.drawer, *, always: bool = False) -> ui.drawer:
    """Mark `drawer` so Esc closes it (see the module's docstring)."""
    return drawer.props(f"data-esc-close={'always' if always else 'narrow'}")
