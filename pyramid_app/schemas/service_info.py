import colander


class UploadQuery(colander.MappingSchema):
    path = colander.SchemaNode(colander.String(), validator=colander.Length(1, 1024),
                               description="Where to store the body, relative to the upload directory.")


class Upload(colander.MappingSchema):
    path = colander.SchemaNode(colander.String(), description="The stored file, relative to the upload directory.")
    size = colander.SchemaNode(colander.Int(), description="Bytes stored.")


class Warning(colander.MappingSchema):
    msg = colander.SchemaNode(colander.String())
    project = colander.SchemaNode(colander.String(), missing=None)
    first_date = colander.SchemaNode(colander.String())
    last_date = colander.SchemaNode(colander.String())
    count = colander.SchemaNode(colander.Int())


class Warnings(colander.SequenceSchema):
    warning = Warning()


class Dismissed(colander.MappingSchema):
    count = colander.SchemaNode(colander.Int(), description="How many warnings were dismissed.")
