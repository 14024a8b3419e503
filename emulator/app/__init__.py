"""Loading the function app: its index of functions, settings, and the SDK's private members.

``_app_index`` indexes the app's functions as the Python worker does; ``_settings`` reads host.json
and local.settings.json (``_config`` matches their keys case-insensitively, ``_providers`` maps other
durable storage providers onto the emulator's); ``_dotnet`` holds the .NET text formats the host
uses; ``_sdk`` is everything taken from the SDKs beyond their documented API. Nothing is
re-exported: importing the package loads none of its modules.
"""
