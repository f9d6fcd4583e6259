"""The periodic report (monthly, quarterly, any days): figures from the history, rendered as HTML and PDF."""
