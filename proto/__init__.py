"""Message definitions (protobuf): built by the xApp issue."""
