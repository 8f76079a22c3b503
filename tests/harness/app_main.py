"""Main file for NiceGUI `user` tests: builds the real app from the environment (MLXUI_HOME)."""

from nicegui import ui

from mlxui.app import create_app
from mlxui.config import load_config

create_app(load_config())
ui.run(title="mlxui", reload=False, show_welcome_message=False)
