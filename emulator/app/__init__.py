"""Loading the function app: its index of functions, settings, and the SDK's private members."""
