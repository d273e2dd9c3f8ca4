"""Who may do what: API tokens (hashed with a key, compared in constant time) and signed one-tap
links. Pure functions and settings; the API (api/) and the notifier (notifier/) use them."""
