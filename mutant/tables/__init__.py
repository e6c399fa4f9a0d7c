"""The app every user table belongs to (`tables.<Name>`)."""
