"""The E2 bridge: an O-RAN SC RIC's RMR and REST side of the xApp, in its own process (`wmfm bridge`,
its own container in the xApp's pod).

    rmr.py      RMR messages (the C library librmr_si, through ctypes)
    ric.py      the RIC's REST services: subscription manager, E2 manager, application manager
    a1.py       A1 policy requests (RMR) -> the xApp's /ric/v1/policies -> A1 policy responses
    bridge.py   start-up (register, subscribe, ask A1 for the policies), the loop (RIC indications
                forwarded unchanged to the xApp's indication socket), SIGTERM (unsubscribe, deregister)
"""
