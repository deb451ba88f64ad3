"""The near-RT RIC xApp: built by the xApp issue."""
