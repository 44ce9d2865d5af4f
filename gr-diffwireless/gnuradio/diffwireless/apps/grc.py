"""``dw-grc [FLOWGRAPH.grc ...]``: GNU Radio Companion with the gr-diffwireless blocks, run by this interpreter.

GRC generates and runs a flowgraph with the interpreter it was started with (``sys.executable``), so started from
here it runs flowgraphs where torch and the diffusion blocks import; ``GRC_BLOCKS_PATH`` gets the folder of this
install's block definitions, so the ``[Diffusion Wireless]`` tree is there whatever the install prefix.

``--screenshot PNG`` opens the window under the current display (e.g. Xvfb), expands ``[Diffusion Wireless]``,
saves the window to ``PNG``, prints the tree's rows and quits (the picture in the docs). ``--list`` loads GRC's
block library without a window and prints every ``diffwireless_*`` block and any load error.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path

from diffwireless.paths import examples_dir, grc_blocks_dir

CATEGORY = "Diffusion Wireless"
WINDOW_SIZE = (1400, 860)  # pixels, for the picture in the docs
_GTK_MISSING = ("GNU Radio Companion needs GTK 3's introspection data, which this machine lacks ({err}).\n"
                "Install it with: sudo apt-get install gir1.2-gtk-3.0   (or run 'make grc' in the source tree)")


def grc_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with this install's block folder first on ``GRC_BLOCKS_PATH``."""
    env = dict(os.environ if env is None else env)
    paths = [str(grc_blocks_dir())] + [p for p in env.get("GRC_BLOCKS_PATH", "").split(os.pathsep) if p]
    env["GRC_BLOCKS_PATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


class _Problems(logging.Handler):
    """Collects GRC's warnings and errors while it loads its library (it logs them and goes on)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage() + (f" {record.exc_info[1]}" if record.exc_info else ""))


def load_platform(gui: bool = False):
    """GRC's platform with its block library built from ``GRC_BLOCKS_PATH``, and the warnings and errors GRC
    logged about ``diffwireless`` files while loading it."""
    from gnuradio import gr

    if gui:
        from gnuradio.grc.gui.Platform import Platform
    else:
        from gnuradio.grc.core.platform import Platform
    problems = _Problems()
    grc_log = logging.getLogger("gnuradio.grc")
    grc_log.addHandler(problems)
    try:
        gui_args = {"install_prefix": gr.prefix()} if gui else {}
        platform = Platform(version=gr.version(), version_parts=(gr.major_version(), gr.api_version(),
                                                                 gr.minor_version()),
                            prefs=gr.prefs(), **gui_args)
        platform.build_library()
    finally:
        grc_log.removeHandler(problems)
    return platform, [m for m in problems.messages if "diffwireless" in m]


def _check_gtk() -> str | None:
    try:
        import gi

        gi.require_version("Gtk", "3.0")
        gi.require_version("PangoCairo", "1.0")
        from gi.repository import Gtk  # noqa: F401
    except (ImportError, ValueError) as exc:
        return str(exc)
    return None


def _companion() -> str:
    path = shutil.which("gnuradio-companion") or "/usr/bin/gnuradio-companion"
    if not Path(path).is_file():
        raise SystemExit("dw-grc: gnuradio-companion is not installed (Debian: sudo apt-get install gnuradio)")
    return path


def list_blocks() -> int:
    """Print the ``diffwireless_*`` blocks GRC loads (id, category, label) and the load errors; 1 on any error."""
    os.environ.update(grc_environment())
    platform, problems = load_platform()
    ours = sorted(key for key in platform.blocks if key.startswith("diffwireless_"))
    for key in ours:
        block = platform.blocks[key]
        print(f"{key}\t{'/'.join(block.category)}\t{block.label}")
    for message in problems:
        print("ERROR", message, file=sys.stderr)
    return 0 if ours and not problems else 1


def screenshot(png: str, flowgraphs: list[str], delay_s: float = 4.0) -> int:
    """Open GRC, expand ``[Diffusion Wireless]``, save the window as ``png``, print the tree's rows, quit."""
    err = _check_gtk()
    if err:
        print(_GTK_MISSING.format(err=err), file=sys.stderr)
        return 2
    os.environ.update(grc_environment())
    from gi.repository import Gdk, GLib

    platform, problems = load_platform(gui=True)
    from gnuradio.grc.gui.Application import Application  # after the GUI platform, as GRC's own main imports them
    for message in problems:
        print("ERROR", message, file=sys.stderr)
    app = Application(flowgraphs, platform)
    result = {"rc": 1}

    def shoot() -> bool:
        window = getattr(app, "main_window", None)
        if window is None:
            return True  # not built yet: try again
        tree = window.btwin
        root = tree._categories.get((CATEGORY,))
        if root is None:
            print(f"dw-grc: no [{CATEGORY}] category in GRC's block tree", file=sys.stderr)
            app.quit()
            return False
        window.resize(*WINDOW_SIZE)

        def arrange() -> bool:  # once the window has its size
            window.main.set_position(window.get_allocated_width() - 420)  # a block tree wide enough for labels
            tree.treeview.collapse_all()
            tree.treeview.expand_row(tree.treestore.get_path(root), True)
            GLib.timeout_add(int(delay_s * 250), save)
            return False

        def save() -> bool:
            gdk_window = window.get_window()
            width, height = gdk_window.get_width(), gdk_window.get_height()
            pixbuf = Gdk.pixbuf_get_from_window(gdk_window, 0, 0, width, height)
            Path(png).parent.mkdir(parents=True, exist_ok=True)
            pixbuf.savev(png, "png", [], [])
            _print_rows(tree, root, 0)
            result["rc"] = 0
            app.quit()
            return False

        GLib.timeout_add(int(delay_s * 250), arrange)
        return False

    GLib.timeout_add(int(delay_s * 500), shoot)
    app.run([])
    return result["rc"]


def _print_rows(tree, it, depth: int) -> None:
    """The rows under ``it`` as GRC shows them: categories and block labels, with the block ids."""
    store = tree.treestore
    child = store.iter_children(it)
    while child is not None:
        name, key = store.get_value(child, 0), store.get_value(child, 1)
        print("  " * depth + (f"{name}\t{key}" if key else f"[{name}]"))
        if not key:
            _print_rows(tree, child, depth + 1)
        child = store.iter_next(child)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dw-grc", description=__doc__.split("\n\n")[0])
    parser.add_argument("flowgraphs", nargs="*", help="flowgraphs to open (examples: " + str(examples_dir()) + ")")
    parser.add_argument("--screenshot", metavar="PNG", help="save the window with the block tree open, and quit")
    parser.add_argument("--list", action="store_true", help="print the blocks GRC loads from this install, and quit")
    args = parser.parse_args(argv)
    if args.list:
        return list_blocks()
    if args.screenshot:
        return screenshot(args.screenshot, args.flowgraphs)
    err = _check_gtk()
    if err:
        print(_GTK_MISSING.format(err=err), file=sys.stderr)
        return 2
    companion = _companion()
    os.execve(sys.executable, [sys.executable, companion, *args.flowgraphs], grc_environment())
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
