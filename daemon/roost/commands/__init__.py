"""From a rule's command to the vendor: guards, write limits, dispatch."""
