"""System tier: a Debian root filesystem as a real minion of a real master (needs root and debootstrap)."""
