"""Pure domain: the flow state machine, codes and ports. Standard library only."""
