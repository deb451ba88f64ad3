"""Message definitions: the `.proto` files and their generated `*_pb2.py` modules (committed;
`make proto` regenerates them and a test checks they are current). Only the xApp's codec
(wmfm.xapp.codec) turns them into records."""
