"""click commands: parse options, call one function of the API, print. No logic."""
