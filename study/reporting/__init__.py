"""What a study explains about itself: the report (``report``), its plots (``plots``), tables (``tables``), the tables of its experiments (``experiments``) and the HTML page (``html``)."""
