"""What is asserted: typed check functions taking a target handle; suites call them."""
