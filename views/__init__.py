"""Textual views of decoded Node trees: `views.app.run_app(root, source_name)` opens the inspector."""
